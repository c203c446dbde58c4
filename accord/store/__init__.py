"""Storage: engines for SQLite and PostgreSQL, and schema migrations."""
