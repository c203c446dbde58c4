"""The backup file: a tar archive holding ``MANIFEST.json``, ``database`` and ``files/<name>``.

The manifest names the party's role, the database's kind and schema revision, and every file
with its SHA-256. Reading trusts nothing in the archive: only the members the manifest names,
only regular files, only names this version of Accord writes, each checked against its digest.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.backup.errors import BackupRefused, NotABackup

FORMAT = "accord-backup/1"
MANIFEST = "MANIFEST.json"
DATABASE = "database"
FILES = "files/"
MAX_MANIFEST_BYTES = 64 * 1024
CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """A file of the data folder kept in the backup."""

    name: str
    sha256: str
    secret: bool


@dataclass(frozen=True)
class Manifest:
    role: str
    created_at: int
    database_kind: str  # sqlite | postgresql
    database_sha256: str
    revision: str | None
    files: tuple[Member, ...] = ()
    ledger_size: int | None = None  # the coordinator's latest checkpoint in the copy

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "role": self.role,
            "createdAt": self.created_at,
            "database": {
                "kind": self.database_kind,
                "sha256": self.database_sha256,
                "revision": self.revision,
            },
            "files": [{"name": m.name, "sha256": m.sha256, "secret": m.secret} for m in self.files],
        }
        if self.ledger_size is not None:
            doc["ledger"] = {"size": self.ledger_size}
        return json.dumps(doc, indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes, *, what: str) -> Manifest:
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise NotABackup(
                    f"{what} is format {str(doc.get('format'))[:40]!r}; this Accord reads {FORMAT}"
                )
            db = doc["database"]
            ledger = doc.get("ledger")
            return cls(
                role=str(doc["role"]),
                created_at=int(doc["createdAt"]),
                database_kind=str(db["kind"]),
                database_sha256=str(db["sha256"]),
                revision=None if db["revision"] is None else str(db["revision"]),
                files=tuple(
                    Member(str(f["name"]), str(f["sha256"]), bool(f["secret"]))
                    for f in doc["files"]
                ),
                ledger_size=None if ledger is None else int(ledger["size"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NotABackup(f"{what} has an unreadable manifest ({type(exc).__name__})") from exc


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def write(out: Path, manifest: Manifest, database: Path, files: dict[str, Path]) -> None:
    """Write the archive to ``out`` (mode 0600: it holds customer data), atomically."""
    if out.exists():
        raise BackupRefused(f"{out} already exists; choose a new file name")
    if not out.parent.is_dir():
        raise BackupRefused(f"the folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            data = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), manifest.created_at, 0o600
            tar.addfile(info, io.BytesIO(data))
            tar.add(database, arcname=DATABASE, recursive=False, filter=_private)
            for name, path in files.items():
                tar.add(path, arcname=FILES + name, recursive=False, filter=_private)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def read(path: Path, staging: Path, allowed_files: Mapping[str, frozenset[str]]) -> Manifest:
    """Check the archive at ``path`` and unpack its members into ``staging``.

    ``allowed_files``: per role, the data-folder file names a backup of that role may carry.
    After this returns, ``staging/database`` and ``staging/files/<name>`` match the manifest.
    """
    if not path.exists():
        raise BackupRefused(f"no file at {path}")
    if not path.is_file():
        raise NotABackup(f"{path} is not a file")
    try:
        tar = tarfile.open(path, mode="r:*")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise NotABackup(f"{path} is not an Accord backup (not a tar archive)") from exc
    with tar:
        try:
            manifest = Manifest.from_json(
                _member(tar, MANIFEST, path, limit=MAX_MANIFEST_BYTES), what=str(path)
            )
            if manifest.role not in allowed_files:
                raise NotABackup(f"{path} is a backup of role {manifest.role[:40]!r}")
            if manifest.database_kind not in ("sqlite", "postgresql"):
                raise NotABackup(f"{path} holds a database of unknown kind")
            staging.joinpath("files").mkdir(parents=True, exist_ok=True)
            _unpack(tar, DATABASE, staging / DATABASE, manifest.database_sha256, path)
            for member in manifest.files:
                if member.name not in allowed_files[manifest.role]:
                    raise NotABackup(
                        f"{path} carries a file Accord never backs up: {member.name!r}"
                    )
                _unpack(
                    tar, FILES + member.name, staging / "files" / member.name, member.sha256, path
                )
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise NotABackup(f"{path} is damaged: {exc}") from exc
    return manifest


def _regular(tar: tarfile.TarFile, name: str, path: Path) -> tarfile.TarInfo:
    try:
        info = tar.getmember(name)
    except KeyError as exc:
        raise NotABackup(f"{path} is not an Accord backup (no {name})") from exc
    if not info.isfile():
        raise NotABackup(f"{path}: {name} is not a regular file")
    return info


def _member(tar: tarfile.TarFile, name: str, path: Path, *, limit: int) -> bytes:
    info = _regular(tar, name, path)
    if info.size > limit:
        raise NotABackup(f"{path}: {name} is larger than {limit} bytes")
    handle = tar.extractfile(info)
    assert handle is not None  # a regular file always has data
    return handle.read()


def _unpack(tar: tarfile.TarFile, name: str, target: Path, sha256: str, path: Path) -> None:
    handle = tar.extractfile(_regular(tar, name, path))
    assert handle is not None
    h = hashlib.sha256()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while block := handle.read(CHUNK):
            h.update(block)
            out.write(block)
    if h.hexdigest() != sha256:
        raise NotABackup(f"{path}: {name} does not match its SHA-256 in the manifest (damaged)")
