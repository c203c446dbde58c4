"""Errors of backup and restore: one readable line each, and nothing changed."""

from __future__ import annotations

from accord.errors import ConfigError, InvalidInput, NotReady


class NotABackup(InvalidInput):
    """The file given is not an Accord backup, or it is damaged."""


class BackupRefused(ConfigError):
    """The backup or restore cannot run as asked (a missing folder, a server running, ...)."""


class ServerRunning(NotReady):
    """A party is serving from the data folder a restore would replace."""
