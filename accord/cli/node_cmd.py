"""`accord node`: run a node and manage its local data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy import Engine

from accord.data.channel_file import read_channel_table
from accord.errors import ConfigError, InvalidInput
from accord.node import store
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

app = typer.Typer(help="Run a node and manage its local data.", no_args_is_help=True)


@app.command("serve")
def serve(
    channel: str = typer.Option(..., "--channel", help="This node's channel name."),
    role: str = typer.Option("feature", "--role", help="feature or label."),
    data_dir: Path = typer.Option(..., "--data-dir", help="The node's state folder."),
    pki: Path = typer.Option(..., "--pki", help="This party's folder from `accord pki init`."),
    coordinator: str = typer.Option("127.0.0.1:50051", "--coordinator", help="host:port."),
    listen: str = typer.Option("127.0.0.1:0", "--listen", help="host:port (port 0: any)."),
    advertise: str | None = typer.Option(
        None,
        "--advertise",
        help="host:port other parties call, registered instead of --listen (needed with 0.0.0.0).",
    ),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: SQLite in --data-dir)."
    ),
    metrics_listen: str | None = typer.Option(
        None,
        "--metrics-listen",
        help="host:port to serve Prometheus metrics on, plain HTTP (port 0: any); off if unset.",
    ),
    train: bool = typer.Option(
        True,
        "--train/--no-train",
        help="A feature node runs its training participant (a Flower SuperNode joined to the "
        "coordinator's Fleet, reading only this node's store) when the coordinator has one.",
    ),
    require_consent_proofs: bool = typer.Option(
        False,
        "--require-consent-proofs",
        help="Refuse a scoring use unless the customer presents a valid proof of the consent "
        "credential this node issued them (a supplied proof must be valid either way).",
    ),
) -> None:
    """Serve the node, register with the coordinator, run until SIGTERM."""
    from accord.node.app import NodeConfig, run_node

    run_node(
        NodeConfig(
            channel=channel,
            role=role,
            data_dir=data_dir,
            pki_dir=pki,
            coordinator=coordinator,
            listen=listen,
            db_url=db,
            advertise=advertise,
            metrics_listen=metrics_listen,
            train=train,
            require_consent_proofs=require_consent_proofs,
        )
    )


@app.command("import")
def import_(
    channel: str = typer.Option(..., "--channel", help="This node's channel name."),
    data_dir: Path = typer.Option(..., "--data-dir", help="The node's state folder."),
    file: Path = typer.Option(
        ...,
        "--file",
        help="<channel>.csv with its .schema.json beside it, or a purchase log "
        "<channel>.purchases.csv (then give --as-of).",
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="Purchase logs only: the cut-off day (YYYY-MM-DD) of the features the node derives.",
    ),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: SQLite in --data-dir)."
    ),
) -> None:
    """Replace this node's customers with the rows of FILE (its own data only)."""
    from accord.data.purchase_file import SUFFIX as PURCHASES_SUFFIX
    from accord.data.purchase_file import read_purchase_log

    purchases = file.name.endswith(PURCHASES_SUFFIX)
    if purchases and as_of is None:
        raise InvalidInput("a purchase log needs --as-of YYYY-MM-DD: the features' cut-off day")
    if not purchases and as_of is not None:
        raise InvalidInput(f"--as-of applies only to purchase logs (<channel>{PURCHASES_SUFFIX})")
    engine = make_engine(db or sqlite_url(data_dir / "node.db"))
    if purchases:
        assert as_of is not None
        try:
            cut_off = dt.date.fromisoformat(as_of)
        except ValueError as exc:
            raise InvalidInput(f"--as-of {as_of!r} is not a day written YYYY-MM-DD") from exc
        log = read_purchase_log(file)
        upgrade(engine, "node")
        count = store.import_purchases(engine, log, channel, cut_off)
        Console().print(
            f"imported {count} customers and {len(log.purchases)} purchases into {channel}; "
            f"features derive from purchases up to {cut_off}"
        )
        return
    table = read_channel_table(file)
    upgrade(engine, "node")
    count = store.import_table(engine, table, channel)
    Console().print(f"imported {count} customers and {len(table.columns)} columns into {channel}")


@app.command("status")
def status(
    data_dir: Path = typer.Option(..., "--data-dir", help="The node's state folder."),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: SQLite in --data-dir)."
    ),
) -> None:
    """What the node still owes the ledger and the network (its outbox), and the last index."""
    from rich.table import Table

    from accord.node import outbox

    engine = make_engine(db or sqlite_url(data_dir / "node.db"))
    upgrade(engine, "node")
    pending, refused = outbox.pending(engine), outbox.failed(engine)
    table = Table(title=f"Ledger outbox: {len(pending)} pending, {len(refused)} refused")
    for header in ("id", "kind", "state", "created", "attempts", "last error"):
        table.add_column(header)
    for state, entries in (("pending", pending), ("refused", refused)):
        for e in entries:
            table.add_row(
                str(e.id),
                e.kind,
                state,
                dt.datetime.fromtimestamp(e.created_at, dt.UTC).isoformat(timespec="seconds"),
                str(e.attempts),
                e.last_error or "-",
            )
    console = Console()
    console.print(table)
    last = outbox.last_index(engine)
    console.print(f"last appended ledger index: {'-' if last is None else last}")
    _ledger_status(engine, console)


def _ledger_status(engine: Engine, console: Console) -> None:
    """The coordinator checkpoint this node holds, and any rollback or fork it detected."""
    from accord.node.ledger_watch import LedgerAlarmed, alarms, views

    for view in views(engine):
        checked = dt.datetime.fromtimestamp(view.verified_at, dt.UTC).isoformat(timespec="seconds")
        console.print(
            f"coordinator ledger: checkpoint {view.size} (root {bytes(view.root_hash).hex()[:16]}) "
            f"verified, last extended {checked}"
        )
    found = alarms(engine)
    for alarm in found:
        seen = dt.datetime.fromtimestamp(alarm.last_seen_at, dt.UTC).isoformat(timespec="seconds")
        console.print(
            f"[bold red]LEDGER {alarm.kind.upper()}[/] (seen by the {alarm.source} {alarm.times} "
            f"times, last {seen}): {alarm.detail}"
        )
    if found:
        raise LedgerAlarmed(
            f"the coordinator's ledger does not extend the checkpoint this node holds "
            f"({found[0].kind}: held {found[0].held_size}, served {found[0].served_size}); "
            "both signed checkpoints are kept in the node's ledger_alarm table as evidence"
        )


@app.command("clear-ledger-alarms")
def clear_ledger_alarms(
    data_dir: Path = typer.Option(..., "--data-dir", help="The node's state folder."),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: SQLite in --data-dir)."
    ),
) -> None:
    """After investigating a rollback or fork: forget it and trust the ledger as now served."""
    from accord.node.ledger_watch import clear_alarms

    if db is None and not (data_dir / "node.db").is_file():
        raise ConfigError(f"no node database in {data_dir}")
    engine = make_engine(db or sqlite_url(data_dir / "node.db"))
    upgrade(engine, "node")
    count = clear_alarms(engine)
    Console().print(
        f"cleared {count} ledger alarms; the node follows the coordinator's ledger from its "
        "next checkpoint"
    )
