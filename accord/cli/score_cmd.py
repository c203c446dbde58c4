"""`accord score`: a marketer's question at a touchpoint, answered in a Rich panel."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from accord.errors import InvalidInput
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.touchpoint import ask, subject


def score(
    touchpoint: str = typer.Option(
        ..., "--touchpoint", help="Where the customer is, e.g. checkout."
    ),
    ref: str | None = typer.Option(None, "--ref", help="The brand's customer reference."),
    token: str | None = typer.Option(
        None, "--token", help="A channel's session token <channel>:<token>."
    ),
    purpose: str = typer.Option(
        "marketing", "--purpose", help="A purpose from the consent vocabulary."
    ),
    coordinator: str = typer.Option("127.0.0.1:50051", "--coordinator", help="host:port."),
    pki: Path = typer.Option(..., "--pki", help="Your party folder (e.g. pki/marketer)."),
    wallet: Path | None = typer.Option(
        None,
        "--wallet",
        help="The customer's wallet (accord wallet): its consent proofs go to each channel "
        "it holds a credential of.",
    ),
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.1, help="Seconds to wait for each of the two calls."
    ),
) -> None:
    """Ask for a customer's trust score (or lifetime value) and the action the policy picks."""
    if bool(ref) == bool(token):
        raise InvalidInput("name the customer with exactly one of --ref or --token")
    prover = None
    if wallet is not None:
        from accord.wallet import holder, store

        prover = holder.prover(store.load(wallet), int(time.time()))
    credentials = PartyCredentials.load(pki)
    with credentials.channel(coordinator, COORDINATOR) as channel:
        answer = ask(
            scoring_pb2_grpc.ScoringStub(channel),
            touchpoint,
            subject(ref, token),
            purpose,
            timeout_s=timeout,
            prover=prover,
        )
    console = Console()
    if not answer.scored:
        console.print(
            Panel(answer.explanation, title=f"{ref or token}: no score", border_style="yellow")
        )
        raise SystemExit(0)
    table = Table.grid(padding=(0, 2))
    if answer.HasField("trust"):
        table.add_row("trust", f"[bold]{answer.trust:g}[/bold] / 100")
    if answer.HasField("ltv") and answer.HasField("ltv_low"):
        table.add_row(
            "LTV",
            f"[bold]{answer.ltv:,.2f}[/bold] (80 % interval {answer.ltv_low:,.2f}"
            f"-{answer.ltv_high:,.2f})",
        )
    elif answer.HasField("ltv"):
        only = answer.sources[0] if answer.sources else "one source"
        table.add_row("LTV", f"[bold]{answer.ltv:,.2f}[/bold] ({only}'s own estimate, scaled)")
    table.add_row("action", f"[bold green]{answer.action}[/bold green]")
    table.add_row("sources", ", ".join(answer.sources))
    table.add_row("confidence", f"{answer.confidence:.0%}")
    table.add_row("policy", answer.policy_version)
    table.add_row("model", answer.model)
    table.add_row("why", answer.explanation)
    table.add_row(
        "receipt", f"uses at ledger {', '.join(str(i) for i in answer.receipt.use_indexes)}"
    )
    console.print(Panel(table, title=f"{ref or token} at {touchpoint}", border_style="green"))
