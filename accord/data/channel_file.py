"""The file a party imports into its own node: one CSV of customers plus a schema sidecar.

``<channel>.csv`` has the header ``local_ref,phone,email,<column>...``; ``<channel>.schema.json``
names each column's type. Only the schema (names and types) ever leaves the node.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accord.data.csv_records import open_csv, records
from accord.errors import InvalidInput
from accord.schema import COLUMN_TYPES, MAX_COLUMNS, ColumnType, check_column_name

IDENTITY_COLUMNS = ("local_ref", "phone", "email")


@dataclass(frozen=True)
class ChannelTable:
    """A channel's customers: references, identifiers and a float matrix of its columns."""

    channel: str
    refs: list[str]
    phones: list[str]
    emails: list[str]
    columns: dict[str, ColumnType]
    values: np.ndarray  # shape (len(refs), len(columns)); NaN where unknown

    def __len__(self) -> int:
        return len(self.refs)

    def csv_path(self, directory: Path) -> Path:
        return directory / f"{self.channel}.csv"

    def write(self, directory: Path) -> Path:
        path = self.csv_path(directory)
        schema = {
            "channel": self.channel,
            "columns": [{"name": n, "type": t} for n, t in self.columns.items()],
        }
        (directory / f"{self.channel}.schema.json").write_text(json.dumps(schema, indent=2) + "\n")
        names = list(self.columns)
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*IDENTITY_COLUMNS, *names])
            for i, ref in enumerate(self.refs):
                cells = [
                    _format(v, self.columns[n]) for n, v in zip(names, self.values[i], strict=True)
                ]
                writer.writerow([ref, self.phones[i], self.emails[i], *cells])
        return path


def _format(value: float, kind: ColumnType) -> str:
    if math.isnan(value):
        return ""
    if kind == "float":
        return repr(float(value))
    return str(int(value))


def _parse_schema(path: Path) -> tuple[str, dict[str, ColumnType]]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path} is missing: every channel CSV needs its schema file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), list):
        raise InvalidInput(f"{path}: expected an object with a 'columns' list")
    channel = raw.get("channel")
    if not isinstance(channel, str):
        raise InvalidInput(f"{path}: 'channel' must be a string")
    columns: dict[str, ColumnType] = {}
    if not 1 <= len(raw["columns"]) <= MAX_COLUMNS:
        raise InvalidInput(f"{path}: a schema has between 1 and {MAX_COLUMNS} columns")
    for i, col in enumerate(raw["columns"]):
        if not isinstance(col, dict) or set(col) != {"name", "type"}:
            raise InvalidInput(f"{path}: column {i} must have exactly 'name' and 'type'")
        name, kind = col["name"], col["type"]
        if not isinstance(name, str):
            raise InvalidInput(f"{path}: column {i} name must be a string")
        check_column_name(name, str(path))
        if kind not in COLUMN_TYPES:
            raise InvalidInput(
                f"{path}: column {name!r} has type {kind!r}; use one of {', '.join(COLUMN_TYPES)}"
            )
        if name in columns:
            raise InvalidInput(f"{path}: column {name!r} appears twice")
        columns[name] = kind
    return channel, columns


def read_channel_table(path: Path) -> ChannelTable:
    """Read and validate ``<channel>.csv`` and its schema; raise with file and line on error."""
    schema_path = path.with_name(path.name.removesuffix(".csv") + ".schema.json")
    channel, columns = _parse_schema(schema_path)
    names = list(columns)
    refs: list[str] = []
    phones: list[str] = []
    emails: list[str] = []
    rows: list[list[float]] = []
    with open_csv(path) as handle:
        reader = records(handle, path)
        header = next(reader, None)
        if header != [*IDENTITY_COLUMNS, *names]:
            raise InvalidInput(
                f"{path}: header must be {','.join([*IDENTITY_COLUMNS, *names])} "
                "(as the schema file lists the columns)"
            )
        seen: set[str] = set()
        for line, record in enumerate(reader, start=2):
            if len(record) != len(header):
                raise InvalidInput(
                    f"{path}:{line}: expected {len(header)} fields, got {len(record)}"
                )
            ref, phone, email = record[:3]
            if not ref or len(ref) > 128:
                raise InvalidInput(f"{path}:{line}: local_ref must be 1-128 characters")
            if ref in seen:
                raise InvalidInput(f"{path}:{line}: local_ref {ref!r} appears twice")
            seen.add(ref)
            values: list[float] = []
            for name, cell in zip(names, record[3:], strict=True):
                values.append(_parse_cell(cell, columns[name], f"{path}:{line}: {name}"))
            refs.append(ref)
            phones.append(phone)
            emails.append(email)
            rows.append(values)
    matrix = np.array(rows, dtype=float).reshape(len(rows), len(names))
    return ChannelTable(channel, refs, phones, emails, columns, matrix)


def _parse_cell(cell: str, kind: ColumnType, where: str) -> float:
    if cell.strip() == "":
        return math.nan
    try:
        value = float(cell)
    except ValueError as exc:
        raise InvalidInput(f"{where}: {cell!r} is not a number") from exc
    if not math.isfinite(value):
        raise InvalidInput(f"{where}: {cell!r} is not a finite number")
    if kind in ("int", "categorical", "bool") and value != int(value):
        raise InvalidInput(f"{where}: {cell!r} must be a whole number for a {kind} column")
    if kind == "bool" and value not in (0.0, 1.0):
        raise InvalidInput(f"{where}: {cell!r} must be 0 or 1")
    return value
