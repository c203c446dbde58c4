"""The progress bar every long CLI step shows: what is happening, a bar, n/total, time."""

from __future__ import annotations

from rich.progress import BarColumn, ProgressColumn, TextColumn, TimeElapsedColumn


def counted_columns() -> tuple[ProgressColumn, ...]:
    return (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
