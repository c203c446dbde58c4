"""`accord pki`: make the network's CA and every party's credentials."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from accord.crypto.pki import certificate_common_name
from accord.pki_layout import init_pki
from accord.rpc.tls import CERT_FILE

app = typer.Typer(help="Make and inspect the network's PKI.", no_args_is_help=True)


@app.command("init")
def init(
    directory: Path = typer.Option(..., "--dir", help="Folder to create the PKI in."),
    parties: str = typer.Option(
        "coordinator,pay,shop,social,label,auditor,marketer",
        "--parties",
        help="Comma-separated party names (an auditor reads the ledger with its own certificate).",
    ),
    network: str = typer.Option("accord.local", "--network", help="The network's name."),
    force: bool = typer.Option(False, "--force", help="Replace an existing PKI in --dir."),
) -> None:
    """Create a CA, a key and certificate per party, and the coordinator's signing key."""
    names = [p.strip() for p in parties.split(",") if p.strip()]
    folders = init_pki(directory, names, network=network, force=force, now=dt.datetime.now(dt.UTC))
    table = Table(title=f"PKI for {network} in {directory}")
    table.add_column("party")
    table.add_column("folder (hand it to that party)")
    for folder in folders:
        table.add_row(certificate_common_name((folder / CERT_FILE).read_bytes()), str(folder))
    Console().print(table)
