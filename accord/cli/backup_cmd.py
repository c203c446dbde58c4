"""`accord backup` and `accord restore`: one party's database and data folder, to one file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console


def backup(
    role: str = typer.Option(..., "--role", help="node or coordinator."),
    data_dir: Path = typer.Option(..., "--data-dir", help="The party's state folder."),
    out: Path = typer.Option(..., "--out", help="The backup file to write (must not exist)."),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: SQLite in --data-dir); PostgreSQL uses pg_dump."
    ),
    include_keys: bool = typer.Option(
        False,
        "--include-keys",
        help="Also keep the node's private keys (identity, key agreement, SuperNode); "
        "then guard the file like the keys themselves.",
    ),
) -> None:
    """Back up a node or coordinator, consistent while it runs (private keys left out)."""
    from accord.backup.party import backup as run_backup

    report = run_backup(role, data_dir, out, db_url=db, include_keys=include_keys)
    console = Console()
    ledger = "" if report.ledger_size is None else f", ledger of {report.ledger_size} entries"
    console.print(
        f"wrote {report.out}: {report.role} {report.database_kind} database at schema "
        f"{report.revision}{ledger}; files: {', '.join(report.files) or 'none'}"
    )
    if report.keys_left_out:
        console.print(
            f"private keys left out: {', '.join(report.keys_left_out)} (keep them apart, or "
            "pass --include-keys); the PKI folder is never part of a backup"
        )
    console.print("the file holds customer data and salts: store it as you store the database")


def restore(
    source: Path = typer.Option(..., "--from", help="A file written by `accord backup`."),
    data_dir: Path = typer.Option(..., "--data-dir", help="The party's state folder."),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: SQLite in --data-dir); PostgreSQL: pg_restore."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="Restore over data the folder already holds (moved aside)."
    ),
) -> None:
    """Restore a backup into a stopped party's folder; checks everything before changing it."""
    from accord.backup.party import restore as run_restore

    report = run_restore(source, data_dir, db_url=db, replace=replace)
    made = dt.datetime.fromtimestamp(report.created_at, dt.UTC).isoformat(timespec="seconds")
    console = Console()
    console.print(
        f"restored the {report.role}'s {report.database_kind} database (schema "
        f"{report.revision}) as of {made}; files: {', '.join(report.files) or 'none'}"
    )
    if report.replaced is not None:
        console.print(f"what it replaced is in {report.replaced}")
    if report.keys_missing:
        console.print(
            f"no {', '.join(report.keys_missing)} in {data_dir}: the node makes new keys at "
            "start, so the network sees a new identity; put the old keys back first if you have "
            "them"
        )
    if report.role == "coordinator":
        size = "?" if report.ledger_size is None else str(report.ledger_size)
        console.print(
            f"the ledger is back at {size} entries: nodes and witnesses that saw a later "
            "checkpoint will report a rollback, by design"
        )
