"""`accord align`: run a consent-filtered PSI alignment across the network, with progress."""

from __future__ import annotations

from pathlib import Path

import grpc
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from accord.cli.progress import counted_columns
from accord.errors import AccordError, InvalidInput
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.rpc.client import describe_rpc_error
from accord.rpc.tls import PartyCredentials

IDENTIFIERS: dict[str, alignment_pb2.IdentifierKind.ValueType] = {
    "phone": alignment_pb2.IDENTIFIER_KIND_PHONE,
    "email": alignment_pb2.IDENTIFIER_KIND_EMAIL,
}


def run_alignment(
    coordinator: str, pki: Path, identifier: str = "phone", channels: list[str] | None = None
) -> alignment_pb2.AlignmentProgress:
    """Start a run through the coordinator; show progress; return the final summary."""
    if identifier not in IDENTIFIERS:
        raise InvalidInput("--identifier must be phone or email")
    credentials = PartyCredentials.load(pki)
    request = alignment_pb2.RunAlignmentRequest(
        identifier=IDENTIFIERS[identifier], channels=channels or []
    )
    final = None
    columns = counted_columns()
    with credentials.channel(coordinator, COORDINATOR) as channel, Progress(*columns) as progress:
        task = progress.add_task("alignment: starting", total=None)
        try:
            for event in alignment_pb2_grpc.AlignmentStub(channel).RunAlignment(
                request, timeout=3600
            ):
                if event.stage == "done":
                    final = event
                    progress.update(
                        task, description="alignment: done", completed=progress.tasks[0].total or 1
                    )
                    break
                label = f"{event.stage} {event.channel}".strip()
                progress.update(
                    task,
                    description=f"alignment: {label}",
                    total=event.steps_total,
                    completed=event.steps_done,
                )
        except grpc.RpcError as err:
            raise AccordError(describe_rpc_error(err, f"coordinator at {coordinator}")) from err
    if not isinstance(final, alignment_pb2.AlignmentProgress):
        raise AccordError("the alignment stream ended without a result")
    return final


def summary_table(result: alignment_pb2.AlignmentProgress) -> Table:
    table = Table(title=f"Alignment run {result.run_id} (ledger index {result.ledger_index})")
    for header in ("node", "entered (consented)", "shared with the brand", "coverage"):
        table.add_column(header, justify="right" if header != "node" else "left")
    table.add_row("label (brand)", str(result.label_candidates), "-", "-")
    for c in result.channels:
        coverage = c.matched / result.label_candidates if result.label_candidates else 0.0
        table.add_row(c.channel, str(c.candidates), str(c.matched), f"{coverage:.1%}")
    table.caption = (
        f"{result.rows} aligned rows, {result.rows_with_two_or_more_channels} with two or more "
        "channels (the rows training may use)"
    )
    return table


def align(
    coordinator: str = typer.Option("127.0.0.1:50051", "--coordinator", help="host:port."),
    pki: Path = typer.Option(..., "--pki", help="The brand's (label node's) party folder."),
    identifier: str = typer.Option("phone", "--identifier", help="phone or email."),
    channels: str = typer.Option("", "--channels", help="Comma-separated; default: all."),
) -> None:
    """Find the customers the brand shares with each channel, by PSI; print sizes and coverage."""
    wanted = [c.strip() for c in channels.split(",") if c.strip()]
    result = run_alignment(coordinator, pki, identifier, wanted)
    Console().print(summary_table(result))
