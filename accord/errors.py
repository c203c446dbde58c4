"""The root of every Accord exception, and the categories the transport maps to status codes.

Every package defines its own hierarchy under :class:`AccordError` and mixes in one of the
categories below; :mod:`accord.rpc.status` turns a category into a gRPC status code in one place
and the CLI turns any :class:`AccordError` into one readable line. Messages are written for a
person: they say what was wrong and, where possible, what to do about it. They never carry
secrets or personal data.
"""

from __future__ import annotations


class AccordError(Exception):
    """Base class: ``str(err)`` is a message a person can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(AccordError):
    """The caller sent something malformed, oversized or out of range (INVALID_ARGUMENT)."""


class NotAuthenticated(AccordError):
    """The caller's identity, signature or credential did not verify (UNAUTHENTICATED)."""


class NotPermitted(AccordError):
    """The caller is known but not allowed to do this (PERMISSION_DENIED)."""


class NotFound(AccordError):
    """The thing asked for does not exist (NOT_FOUND)."""


class Conflict(AccordError):
    """The request contradicts state that already exists (ALREADY_EXISTS)."""


class NotReady(AccordError):
    """The system is not in a state where this can run yet (FAILED_PRECONDITION)."""


class Unavailable(AccordError):
    """A party or resource this needs cannot be reached now; retrying may help (UNAVAILABLE)."""


class ConfigError(AccordError):
    """Local configuration (files, flags, environment) is missing or wrong; CLI-side only."""
