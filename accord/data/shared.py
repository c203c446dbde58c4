"""Where the shared data sets are: ``$ACCORD_SHARED``, else a ``shared`` folder beside the
working folder or beside this checkout (the data are read in place, never copied in)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["find_shared", "missing_message", "shared_roots"]

_CHECKOUT = Path(__file__).resolve().parents[2]  # accord/data/shared.py -> the checkout


def shared_roots() -> list[Path]:
    """The folders looked in, first match wins."""
    if env := os.environ.get("ACCORD_SHARED"):
        return [Path(env)]
    roots = [Path.cwd().parent / "shared", _CHECKOUT.parent / "shared"]
    return list(dict.fromkeys(p.resolve() for p in roots))


def find_shared(*parts: str) -> Path | None:
    """``shared/<parts>`` in the first root that has it, or None."""
    for root in shared_roots():
        path = root.joinpath(*parts)
        if path.exists():
            return path
    return None


def missing_message(what: str, *parts: str) -> str:
    """One line saying where ``what`` was looked for and how to give it."""
    looked = ", ".join(str(r.joinpath(*parts)) for r in shared_roots())
    return f"{what} not found (looked in {looked}): give it with --source or set ACCORD_SHARED"
