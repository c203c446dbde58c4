"""The node's own keys, created on first start in its data directory and never sent anywhere.

``identity.key`` (Ed25519, C2SP signer-key text) signs the node's statements;
``kx.key`` (X25519, hex) agrees pairwise mask seeds and opens row keys sealed to the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.errors import ConfigError
from accord.secrets import read_secret, write_secret

IDENTITY_FILE = "identity.key"
KX_FILE = "kx.key"


@dataclass(frozen=True)
class NodeKeys:
    identity: NoteSigner
    kx: KeyAgreementKey


def load_or_create_keys(data_dir: Path, channel: str) -> NodeKeys:
    identity_path, kx_path = data_dir / IDENTITY_FILE, data_dir / KX_FILE
    if not identity_path.exists():
        write_secret(identity_path, NoteSigner.generate(channel).encode() + "\n")
    if not kx_path.exists():
        write_secret(kx_path, KeyAgreementKey.generate().secret.hex() + "\n")
    identity = NoteSigner.parse(read_secret(identity_path))
    if identity.name != channel:
        raise ConfigError(
            f"{identity_path} belongs to channel {identity.name!r}, not {channel!r}: use that "
            "channel's data directory"
        )
    try:
        kx = KeyAgreementKey(bytes.fromhex(read_secret(kx_path).strip()))
    except ValueError as exc:
        raise ConfigError(f"{kx_path} does not hold a hex X25519 key") from exc
    return NodeKeys(identity, kx)


ISSUER_FILE = "consent-issuer.key"


def load_or_create_issuer_key(data_dir: Path) -> bytes:
    """The channel's BBS secret key for the consent credentials it issues (``consent-issuer.key``,
    hex): made once from 32 fresh random bytes; its public key goes onto the ledger."""
    import secrets

    from accord.crypto.bbs import key_gen
    from accord.crypto.bbs.keys import secret_key_scalar
    from accord.crypto.errors import CryptoError

    path = data_dir / ISSUER_FILE
    if not path.exists():
        write_secret(path, key_gen(secrets.token_bytes(32), b"accord consent issuer").hex() + "\n")
    try:
        sk = bytes.fromhex(read_secret(path).strip())
        secret_key_scalar(sk)
    except (ValueError, CryptoError) as exc:
        raise ConfigError(f"{path} does not hold a hex BBS secret key") from exc
    return sk
