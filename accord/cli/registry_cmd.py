"""`accord registry`: fetch, verify and show the coordinator's signed registry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import grpc
import typer
from rich.console import Console
from rich.table import Table

from accord.errors import Unavailable
from accord.pki_layout import COORDINATOR, load_coordinator_verifier
from accord.proto.v1 import registry_pb2, registry_pb2_grpc
from accord.registry import RegistryView, verify_registry
from accord.rpc.client import describe_rpc_error
from accord.rpc.tls import PartyCredentials

app = typer.Typer(help="The network registry.", no_args_is_help=True)


def fetch_registry(coordinator: str, pki: Path) -> RegistryView:
    credentials = PartyCredentials.load(pki)
    with credentials.channel(coordinator, COORDINATOR) as channel:
        try:
            signed = registry_pb2_grpc.RegistryStub(channel).GetRegistry(
                registry_pb2.GetRegistryRequest(), timeout=10
            )
        except grpc.RpcError as err:
            raise Unavailable(describe_rpc_error(err, f"coordinator at {coordinator}")) from err
    return verify_registry(signed, load_coordinator_verifier(pki), ca_pem=credentials.ca_pem)


def registry_table(view: RegistryView, title: str) -> Table:
    table = Table(title=title)
    for header in ("channel", "role", "endpoint", "id key", "kx key", "cols", "joined"):
        table.add_column(header, no_wrap=True)
    for node, since in zip(view.nodes, view.registered_at, strict=True):
        table.add_row(
            node.channel,
            node.role,
            node.endpoint,
            node.identity_key.hex()[:8],
            node.kx_key.hex()[:8],
            str(len(node.schema)),
            dt.datetime.fromtimestamp(since, dt.UTC).strftime("%H:%M"),
        )
    return table


@app.command("show")
def show(
    coordinator: str = typer.Option("127.0.0.1:50051", "--coordinator", help="host:port."),
    pki: Path = typer.Option(..., "--pki", help="Your party folder from `accord pki init`."),
) -> None:
    """Print the registry after verifying the coordinator's signature."""
    view = fetch_registry(coordinator, pki)
    Console().print(
        registry_table(
            view,
            f"Registry v{view.version}, signed by {view.coordinator_key.split('+')[0]} (verified)",
        )
    )
    for refused in view.refused:  # entries whose keys their node's certificate did not sign
        Console().print(f"left out: {refused.reason}")
