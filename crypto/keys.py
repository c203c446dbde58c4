"""Identity and key-agreement keys, and the C2SP signed-note key encodings.

A party's identity is an Ed25519 key. Its public half is written as a C2SP *verifier key*,
``<name>+<key id as 8 hex digits>+<base64(0x01 || public key)>``, the format every signed-note
and checkpoint tool understands, so the same key that signs the registry can sign ledger
checkpoints and be checked by third-party verifiers. Key agreement (pairwise masks, sealing
row keys) uses X25519.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from accord.crypto.errors import MalformedInput, VerificationError

ED25519_ALG = 0x01
"""The signature-type byte C2SP signed notes assign to Ed25519."""

KEY_BYTES = 32

_PRIVATE_PREFIX = "PRIVATE+KEY+"


def _check_name(name: str) -> None:
    # C2SP: a key name is non-empty and contains no Unicode spaces and no plus signs.
    if not name or any(ch.isspace() for ch in name) or "+" in name:
        raise MalformedInput(f"key name {name!r} must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id: the first 4 bytes of SHA-256(name || '\\n' || 0x01 || key)."""
    _check_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_ALG]) + public_key).digest()
    return digest[:4]


def _raw_public(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class NoteVerifier:
    """An Ed25519 public key with the name it signs under."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.public_key) != KEY_BYTES:
            raise MalformedInput(
                f"an Ed25519 public key is {KEY_BYTES} bytes, got {len(self.public_key)}"
            )

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    def encode(self) -> str:
        """The C2SP verifier-key string ``name+hexid+base64key``."""
        blob = base64.b64encode(bytes([ED25519_ALG]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def parse(cls, text: str) -> NoteVerifier:
        """Parse ``name+hexid+base64key``; the base64 part may itself contain '+'."""
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise MalformedInput("a verifier key reads name+keyid+base64key")
        name, hex_id, blob = parts
        try:
            raw = base64.b64decode(blob, validate=True)
            wanted_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise MalformedInput(f"verifier key {name!r}: bad hex key id or base64 key") from exc
        if len(hex_id) != 8 or len(raw) != KEY_BYTES + 1 or raw[0] != ED25519_ALG:
            raise MalformedInput(
                f"verifier key {name!r}: expected an 8-digit key id and an Ed25519 key"
            )
        verifier = cls(name, raw[1:])
        if verifier.key_id != wanted_id:
            raise MalformedInput(f"verifier key {name!r}: key id does not match name and key")
        return verifier

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`VerificationError` unless ``signature`` signs ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature as exc:
            raise VerificationError(f"signature by {self.name} does not verify") from exc


@dataclass(frozen=True)
class NoteSigner:
    """An Ed25519 private key with the name it signs under."""

    name: str
    seed: bytes

    def __post_init__(self) -> None:
        _check_name(self.name)
        if len(self.seed) != KEY_BYTES:
            raise MalformedInput(f"an Ed25519 private key is {KEY_BYTES} bytes")

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        key = Ed25519PrivateKey.generate()
        return cls(name, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, _raw_public(self._key().public_key()))

    def sign(self, message: bytes) -> bytes:
        return self._key().sign(message)

    def encode(self) -> str:
        """The C2SP signer-key string ``PRIVATE+KEY+name+hexid+base64key`` (a secret)."""
        blob = base64.b64encode(bytes([ED25519_ALG]) + self.seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.verifier.key_id.hex()}+{blob}"

    @classmethod
    def parse(cls, text: str) -> NoteSigner:
        text = text.strip()
        if not text.startswith(_PRIVATE_PREFIX):
            raise MalformedInput("a signer key starts with PRIVATE+KEY+")
        parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise MalformedInput("a signer key reads PRIVATE+KEY+name+keyid+base64key")
        name, hex_id, blob = parts
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error as exc:
            raise MalformedInput(f"signer key {name!r}: bad base64") from exc
        if len(raw) != KEY_BYTES + 1 or raw[0] != ED25519_ALG:
            raise MalformedInput(f"signer key {name!r}: expected an Ed25519 key")
        signer = cls(name, raw[1:])
        if signer.verifier.key_id.hex() != hex_id:
            raise MalformedInput(f"signer key {name!r}: key id does not match")
        return signer

    def __repr__(self) -> str:  # never print the seed
        return f"NoteSigner(name={self.name!r}, key_id={self.verifier.key_id.hex()})"


@dataclass(frozen=True)
class KeyAgreementKey:
    """An X25519 private key, used for pairwise mask seeds and for opening sealed row keys."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise MalformedInput(f"an X25519 private key is {KEY_BYTES} bytes")

    @classmethod
    def generate(cls) -> KeyAgreementKey:
        key = X25519PrivateKey.generate()
        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @cached_property
    def private_key(self) -> X25519PrivateKey:
        """The parsed key, made once per object (scoring uses it on every request)."""
        return X25519PrivateKey.from_private_bytes(self.secret)

    def __getstate__(self) -> dict[str, bytes]:  # pickle the secret, not the parsed key
        return {"secret": self.secret}

    def __setstate__(self, state: dict[str, bytes]) -> None:
        object.__setattr__(self, "secret", state["secret"])

    @property
    def public_key(self) -> bytes:
        return _raw_public(self.private_key.public_key())

    def exchange(self, peer_public: bytes) -> bytes:
        """The raw X25519 shared secret with ``peer_public`` (feed it to a KDF, never use it)."""
        check_x25519_public(peer_public)
        peer = X25519PublicKey.from_public_bytes(peer_public)
        return self.private_key.exchange(peer)

    def __repr__(self) -> str:
        return f"KeyAgreementKey(public={self.public_key.hex()[:16]}…)"


def check_ed25519_public(key: bytes) -> None:
    """Raise :class:`MalformedInput` unless ``key`` is a usable Ed25519 public key."""
    if len(key) != KEY_BYTES:
        raise MalformedInput(f"Ed25519 public key must be {KEY_BYTES} bytes, got {len(key)}")
    try:
        Ed25519PublicKey.from_public_bytes(key)
    except ValueError as exc:
        raise MalformedInput("Ed25519 public key is not a valid curve point") from exc


def check_x25519_public(key: bytes) -> None:
    """Raise :class:`MalformedInput` unless ``key`` is a 32-byte X25519 public key."""
    if len(key) != KEY_BYTES:
        raise MalformedInput(f"X25519 public key must be {KEY_BYTES} bytes, got {len(key)}")


def verify_ed25519(public_key: bytes, signature: bytes, message: bytes, *, what: str) -> None:
    """Verify a bare Ed25519 signature; ``what`` names the signed thing in the error."""
    check_ed25519_public(public_key)
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature as exc:
        raise VerificationError(f"signature on {what} does not verify") from exc
