"""The wallet file: the holder's secret, pending requests and credentials, in one JSON file."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accord.errors import ConfigError, InvalidInput

VERSION = 1
SECRET_BYTES = 32


@dataclass
class StoredCredential:
    """One issued credential, everything the holder needs to prove it later (hex-encoded)."""

    channel: str
    public_key: str
    signature: str
    messages: list[str]
    prover_blind: str
    expires_at: int


@dataclass
class Wallet:
    holder_secret: str
    # request id -> (channel, prover blind): commitments sent, credentials not yet back
    pending: dict[str, dict[str, str]] = field(default_factory=dict)
    credentials: list[StoredCredential] = field(default_factory=list)

    def secret(self) -> bytes:
        return bytes.fromhex(self.holder_secret)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Wallet:
        if data.get("version") != VERSION:
            raise InvalidInput(f"unknown wallet version {data.get('version')!r}")
        try:
            wallet = cls(
                str(data["holder_secret"]),
                {str(k): dict(v) for k, v in data["pending"].items()},
                [StoredCredential(**c) for c in data["credentials"]],
            )
            if len(wallet.secret()) != SECRET_BYTES:
                raise ValueError("holder secret length")
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"the wallet file is damaged: {exc}") from exc
        return wallet


def create(path: Path) -> Wallet:
    """A new wallet with a fresh holder secret; refuses to overwrite an existing file."""
    if path.exists():
        raise ConfigError(f"{path} already exists: a wallet is never overwritten")
    wallet = Wallet(secrets.token_bytes(SECRET_BYTES).hex())
    save(path, wallet, new=True)
    return wallet


def load(path: Path) -> Wallet:
    if not path.exists():
        raise ConfigError(f"{path} does not exist: create it with `accord wallet init`")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path} is not a wallet file: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} is not a wallet file")
    return Wallet.from_json(data)


def save(path: Path, wallet: Wallet, *, new: bool = False) -> None:
    """Write atomically with owner-only permissions (the file holds the holder's secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(wallet.to_json(), out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)
        if new and path.exists():
            raise ConfigError(f"{path} already exists: a wallet is never overwritten")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
