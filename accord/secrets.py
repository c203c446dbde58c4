"""Secret files: written once with mode 0600, read back, never logged."""

from __future__ import annotations

import os
from pathlib import Path

from accord.errors import ConfigError


def write_secret(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; refuse to overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"{path} already exists; refusing to overwrite a secret") from exc
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def read_secret(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing") from exc
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others; run `chmod 600 {path}`")
    return path.read_text()
