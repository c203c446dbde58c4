"""Reading an imported CSV file row by row, with every way it can be unreadable refused.

``csv.reader`` over a text file raises :class:`UnicodeDecodeError` for bytes that are not UTF-8
and :class:`csv.Error` for a malformed file (an oversized field, for one) partway through the
rows; both become :class:`~accord.errors.InvalidInput` naming the file (and line, for the latter).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from accord.errors import InvalidInput


def open_csv(path: Path) -> TextIO:
    """``path`` opened for :func:`records`; a missing file is refused."""
    try:
        return path.open(newline="", encoding="utf-8")
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path} does not exist") from exc


def records(handle: TextIO, path: Path) -> Iterator[list[str]]:
    """The rows of an opened CSV file, header first."""
    reader = csv.reader(handle)
    try:
        yield from reader
    except UnicodeDecodeError as exc:
        # text is decoded a block at a time, so no line can be named
        raise InvalidInput(f"{path}: the file is not UTF-8 text") from exc
    except csv.Error as exc:
        raise InvalidInput(f"{path}:{reader.line_num}: not a well-formed CSV file: {exc}") from exc
