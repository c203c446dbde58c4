"""C2SP signed notes (c2sp.org/signed-note) and log checkpoints (c2sp.org/tlog-checkpoint).

A note is text followed by a blank line and signature lines ``— <name> base64(keyid || sig)``.
Its text means nothing until a trusted key's signature verifies, so the only way to get a
:class:`Checkpoint` out of a signed note is :func:`verify_checkpoint`. Signatures by unknown
keys are ignored (that is how witnesses cosign and keys rotate), a bad signature by a known key
rejects the whole note, and at least one known key must have signed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.keys import NoteSigner, NoteVerifier
from accord.crypto.merkle import HASH_SIZE, MAX_TREE_SIZE

MAX_NOTE_BYTES = 1 << 20
"""Notes larger than this are refused before any parsing (a checkpoint is about 200 bytes)."""
MAX_SIGNATURES = 100
"""The spec requires accepting at least 16; Go's reference implementation stops at 100."""

KEY_ID_BYTES = 4
ED25519_SIGNATURE_BYTES = 64

_SIG_PREFIX = "\u2014 "  # em dash, space
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_SIZE = re.compile(r"0|[1-9][0-9]*")


def _decode_b64(text: str, what: str) -> bytes:
    """Strict, canonical base64: exactly one encoding per byte string, so nothing is malleable."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedInput(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode() != text:
        raise MalformedInput(f"{what} is not canonical base64")
    return raw


def _check_text(text: str, what: str) -> None:
    match = _CONTROL.search(text)
    if match:
        raise MalformedInput(f"{what} contains control character {match.group()!r}")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise MalformedInput(f"{what} is not valid Unicode text") from exc


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedInput("note text must end with a newline")
    _check_text(text, "note text")


def _check_key_name(name: str) -> None:
    if not name or any(ch.isspace() for ch in name) or "+" in name:
        raise MalformedInput(f"key name {name!r} must be non-empty, without spaces or '+'")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key name, the 4-byte key id and the signature proper."""

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.key_id) != KEY_ID_BYTES:
            raise MalformedInput(f"a key id is {KEY_ID_BYTES} bytes, got {len(self.key_id)}")
        if not self.signature:
            raise MalformedInput(f"signature by {self.name} is empty")

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{_SIG_PREFIX}{self.name} {blob}\n"

    @classmethod
    def parse(cls, line: str) -> NoteSignature:
        """Parse one signature line, without its trailing newline."""
        if not line.startswith(_SIG_PREFIX):
            raise MalformedInput("a signature line starts with an em dash (U+2014) and a space")
        name, sep, blob = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not blob:
            raise MalformedInput("a signature line reads '— <key name> <base64 signature>'")
        _check_key_name(name)
        raw = _decode_b64(blob, f"signature by {name}")
        if len(raw) <= KEY_ID_BYTES:
            raise MalformedInput(f"signature by {name} is too short ({len(raw)} bytes)")
        return cls(name, raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES:])


@dataclass(frozen=True)
class Note:
    """A parsed but *unverified* signed note: do not act on :attr:`text` before verifying."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        _check_note_text(self.text)
        if not self.signatures:
            raise MalformedInput("a signed note has at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise MalformedInput(
                f"note has {len(self.signatures)} signatures, at most {MAX_SIGNATURES} allowed"
            )

    def encode(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)

    @classmethod
    def parse(cls, data: bytes | str) -> Note:
        """Split a signed note into text and signature lines, enforcing the spec's format."""
        if isinstance(data, str):
            try:
                data = data.encode()
            except UnicodeEncodeError as exc:
                raise MalformedInput("note is not valid Unicode text") from exc
        if len(data) > MAX_NOTE_BYTES:
            raise MalformedInput(f"note is {len(data)} bytes, at most {MAX_NOTE_BYTES} allowed")
        try:
            message = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedInput("note is not valid UTF-8") from exc
        _check_text(message, "note")
        split = message.rfind("\n\n")  # the last blank line separates text from signatures
        if split < 0:
            raise MalformedInput("note has no blank line before its signatures")
        text, block = message[: split + 1], message[split + 2 :]
        if not block.endswith("\n"):
            raise MalformedInput("note must end with a signature line and a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise MalformedInput(
                f"note has {len(lines)} signatures, at most {MAX_SIGNATURES} allowed"
            )
        return cls(text, tuple(NoteSignature.parse(line) for line in lines))


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose text at least one trusted key signed; ``verified_by`` names those keys."""

    text: str
    verified_by: tuple[NoteVerifier, ...]
    signatures: tuple[NoteSignature, ...]


def _index_verifiers(verifiers: Iterable[NoteVerifier]) -> dict[tuple[str, bytes], NoteVerifier]:
    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        slot = (verifier.name, verifier.key_id)
        if known.get(slot, verifier) != verifier:
            raise MalformedInput(
                f"two different verifier keys share name {verifier.name} "
                f"and key id {verifier.key_id.hex()}"
            )
        known[slot] = verifier
    if not known:
        raise MalformedInput("at least one verifier key is needed to verify a note")
    return known


def verify_note(data: bytes | str, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Parse a signed note and verify it against the trusted ``verifiers``.

    Raises :class:`MalformedInput` for a note that does not parse and
    :class:`VerificationError` when a known key's signature fails or no known key signed.
    """
    known = _index_verifiers(verifiers)
    note = Note.parse(data)
    message = note.text.encode()
    verified: list[NoteVerifier] = []
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue  # unknown keys are ignored, even if they share a name or an id
        if len(sig.signature) != ED25519_SIGNATURE_BYTES:
            raise VerificationError(
                f"signature by {sig.name}+{sig.key_id.hex()} is {len(sig.signature)} bytes, "
                f"want {ED25519_SIGNATURE_BYTES}"
            )
        verifier.verify(sig.signature, message)
        if verifier not in verified:
            verified.append(verifier)
    if not verified:
        names = ", ".join(f"{name}+{key_id.hex()}" for name, key_id in known)
        raise VerificationError(f"note carries no signature by a trusted key ({names})")
    return VerifiedNote(note.text, tuple(verified), note.signatures)


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign ``text`` (which must end in a newline) with every signer; return the signed note."""
    _check_note_text(text)
    if not signers:
        raise MalformedInput("at least one signer is needed to sign a note")
    message = text.encode()
    signatures = tuple(NoteSignature(s.name, s.verifier.key_id, s.sign(message)) for s in signers)
    note = Note(text, signatures)
    encoded = note.encode()
    if len(encoded.encode()) > MAX_NOTE_BYTES:
        raise MalformedInput(f"signed note would exceed {MAX_NOTE_BYTES} bytes")
    return encoded


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, RFC 6962 root hash, optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedInput("checkpoint origin must be one non-empty line")
        _check_text(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not 0 <= self.size < MAX_TREE_SIZE:
            raise MalformedInput(f"checkpoint size must be in [0, 2**64), got {self.size}")
        if len(self.root_hash) != HASH_SIZE:
            raise MalformedInput(
                f"checkpoint root hash is {len(self.root_hash)} bytes, want {HASH_SIZE}"
            )
        for line in self.extensions:
            if not line or "\n" in line:
                raise MalformedInput("checkpoint extension lines must be non-empty single lines")
            _check_text(line, "checkpoint extension line")

    def to_text(self) -> str:
        """The note text (the body that gets signed)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body. This trusts nothing: use :func:`verify_checkpoint` for notes."""
        if not text.endswith("\n"):
            raise MalformedInput("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedInput(
                f"checkpoint has {len(lines)} lines, want origin, size and root hash"
            )
        origin, size, root, *extensions = lines
        if len(size) > 20 or not _SIZE.fullmatch(size):
            raise MalformedInput(f"checkpoint size {size[:32]!r} is not a decimal number")
        root_hash = _decode_b64(root, "checkpoint root hash")
        return cls(origin, int(size), root_hash, tuple(extensions))


def verify_checkpoint(
    data: bytes | str, verifiers: Iterable[NoteVerifier], *, origin: str
) -> Checkpoint:
    """The checkpoint in a signed note, only once a trusted key's signature has verified.

    ``origin`` is the log the caller expects; a checkpoint for another log is refused.
    """
    verified = verify_note(data, verifiers)
    checkpoint = Checkpoint.from_text(verified.text)
    if checkpoint.origin != origin:
        raise VerificationError(f"checkpoint is for log {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[NoteSigner]) -> str:
    """The checkpoint as a signed note."""
    return sign_note(checkpoint.to_text(), signers)
