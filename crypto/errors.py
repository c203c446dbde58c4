"""Exceptions raised by :mod:`accord.crypto`."""

from __future__ import annotations

from accord.errors import AccordError, InvalidInput


class CryptoError(AccordError):
    """Base class of every error raised by :mod:`accord.crypto`."""


class MalformedInput(CryptoError, InvalidInput):
    """Bytes or text that cannot be parsed as the expected structure."""


class VerificationError(CryptoError, InvalidInput):
    """A signature, proof or binding did not verify.

    The message says which check failed; callers facing an untrusted peer may choose to
    report one generic failure outward and keep this message for their own log.
    """


class BbsVerificationError(VerificationError):
    """A BBS signature, proof or public key was refused (:mod:`accord.crypto.bbs`).

    Malformed encodings (wrong lengths, points off the curve or at infinity, scalars out of
    range) raise this too, so a verifier has one failure to handle.
    """
