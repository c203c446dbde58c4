"""Backup and restore of one party's data folder and database (``accord backup`` / ``restore``).

A backup is one tar archive: a manifest, a consistent copy of the party's database (SQLite's
online backup API, or ``pg_dump`` for PostgreSQL) and the few files of the data folder that are
the party's own state. Private keys enter a backup only when asked (``--include-keys``); the
PKI folder (TLS key, the coordinator's signing key) is never read.
"""
