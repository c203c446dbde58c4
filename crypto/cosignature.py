"""C2SP tlog-cosignature v1 (c2sp.org/tlog-cosignature): a witness's timestamped signature.

A cosignature is one more signature line on a checkpoint's signed note,
``— <witness name> base64(key id || u64 timestamp || Ed25519 signature)``, over
``"cosignature/v1\\ntime <timestamp>\\n" || checkpoint body``. It states that, as of
``timestamp``, the largest consistent tree the witness has seen for that log has this root. Its
key id is computed with the algorithm byte 0x04, so a verifier of the log's own signatures
(byte 0x01) ignores cosignature lines and a cosignature verifier ignores the log's line.

Pure: no I/O, no clock. The caller passes the time it signs at.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.keys import KEY_BYTES, NoteSigner, NoteVerifier
from accord.crypto.note import ED25519_SIGNATURE_BYTES, Note, NoteSignature

COSIGNATURE_ALG = 0x04
"""The signature-type byte C2SP assigns to Ed25519 cosignature/v1."""
HEADER = "cosignature/v1"
TIMESTAMP_BYTES = 8
MAX_TIMESTAMP = 2**63 - 1
COSIGNATURE_BYTES = TIMESTAMP_BYTES + ED25519_SIGNATURE_BYTES


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || "\\n" || 0x04 || public key)[:4]."""
    if not name or any(ch.isspace() for ch in name) or "+" in name:
        raise MalformedInput(f"cosigner name {name!r} must be non-empty, without spaces or '+'")
    if len(public_key) != KEY_BYTES:
        raise MalformedInput(f"an Ed25519 public key is {KEY_BYTES} bytes, got {len(public_key)}")
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE_ALG]) + public_key)
    return digest.digest()[:4]


def cosigner_vkey(verifier: NoteVerifier) -> str:
    """The witness's C2SP verifier key, ``name+keyid+base64(0x04 || key)``."""
    blob = base64.b64encode(bytes([COSIGNATURE_ALG]) + verifier.public_key).decode()
    return f"{verifier.name}+{cosigner_key_id(verifier.name, verifier.public_key).hex()}+{blob}"


def signed_message(body: str, timestamp: int) -> bytes:
    """The bytes a cosignature signs: header line, time line, then the checkpoint body."""
    _check_timestamp(timestamp)
    if not body.endswith("\n"):
        raise MalformedInput("a checkpoint body ends with a newline")
    return f"{HEADER}\ntime {timestamp}\n{body}".encode()


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedInput(f"a cosignature timestamp is in [0, 2**63 - 1], got {timestamp}")


def cosign(body: str, witness: NoteSigner, timestamp: int) -> NoteSignature:
    """Cosign the checkpoint ``body`` (a note's text) as ``witness`` at ``timestamp``."""
    signature = witness.sign(signed_message(body, timestamp))
    key_id = cosigner_key_id(witness.name, witness.verifier.public_key)
    return NoteSignature(witness.name, key_id, timestamp.to_bytes(8, "big") + signature)


@dataclass(frozen=True)
class Cosignature:
    """A cosignature that verified: who signed, and when they say they did."""

    witness: NoteVerifier
    timestamp: int
    signature: NoteSignature


def verify_cosignature(body: str, signature: NoteSignature, witness: NoteVerifier) -> Cosignature:
    """Raise unless ``signature`` is ``witness``'s valid cosignature of ``body``."""
    wanted = cosigner_key_id(witness.name, witness.public_key)
    if signature.name != witness.name or signature.key_id != wanted:
        raise VerificationError(
            f"the signature line is by {signature.name}+{signature.key_id.hex()}, not by "
            f"cosigner {witness.name}+{wanted.hex()}"
        )
    if len(signature.signature) != COSIGNATURE_BYTES:
        raise VerificationError(
            f"cosignature by {witness.name} is {len(signature.signature)} bytes, want "
            f"{COSIGNATURE_BYTES} (8-byte timestamp and 64-byte Ed25519 signature)"
        )
    timestamp = int.from_bytes(signature.signature[:TIMESTAMP_BYTES], "big")
    if timestamp > MAX_TIMESTAMP:
        raise VerificationError(f"cosignature by {witness.name} has an out-of-range timestamp")
    try:
        witness.verify(signature.signature[TIMESTAMP_BYTES:], signed_message(body, timestamp))
    except VerificationError as exc:
        raise VerificationError(
            f"cosignature by {witness.name} does not verify over this checkpoint"
        ) from exc
    return Cosignature(witness, timestamp, signature)


def parse_line(line: str) -> NoteSignature:
    """One signature line as a witness returns it (with or without its final newline)."""
    text = line[:-1] if line.endswith("\n") else line
    if "\n" in text:
        raise MalformedInput("expected one signature line")
    return NoteSignature.parse(text)


def cosignatures(note: str, witnesses: Iterable[NoteVerifier]) -> list[Cosignature]:
    """Every valid cosignature on ``note`` by one of ``witnesses`` (the first per witness).

    Lines by unknown keys are ignored, as the signed-note spec asks; a line that claims a
    known witness's name and key id but does not verify is an error, not something to skip.
    The note's own (log) signature is not checked here: use :func:`verify_checkpoint`.
    """
    parsed = Note.parse(note)
    known = {(w.name, cosigner_key_id(w.name, w.public_key)): w for w in witnesses}
    found: dict[str, Cosignature] = {}
    for signature in parsed.signatures:
        witness = known.get((signature.name, signature.key_id))
        if witness is None:
            continue
        cosignature = verify_cosignature(parsed.text, signature, witness)
        found.setdefault(witness.name, cosignature)
    return list(found.values())


def add_signatures(note: str, lines: Iterable[NoteSignature]) -> str:
    """``note`` with ``lines`` appended (a line already present is not added twice)."""
    parsed = Note.parse(note)
    signatures = list(parsed.signatures)
    for line in lines:
        if line not in signatures:
            signatures.append(line)
    return Note(parsed.text, tuple(signatures)).encode()
