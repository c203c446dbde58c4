"""Feature schemas: what a node says about its columns (names and types, never values)."""

from __future__ import annotations

import re
from typing import Literal, get_args

from accord.errors import InvalidInput

ColumnType = Literal["float", "int", "categorical", "bool"]
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")
MAX_COLUMNS = 256


def check_column_name(name: str, where: str) -> None:
    """Refuse a column name that could carry a value (an e-mail, a phone, free text)."""
    if not COLUMN_NAME.match(name):
        raise InvalidInput(
            f"{where}: column name {name!r} must start with a letter or '_' and hold only "
            "letters, digits, '_' or '.', at most 64 characters"
        )
