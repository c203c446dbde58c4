"""`accord train`: the federated trust model over Flower, with progress, a plot and a table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from accord.cli.progress import counted_columns

if TYPE_CHECKING:
    from accord.launch.train_job import NetworkLayout
    from accord.scoring.split_model import SplitConfig

DEFAULT_ROUNDS = {"trust": 20, "ltv": 20}  # SplitConfig's and LTV_SPLIT's (no torch at --help)
STAGES = {
    "connect": "training: SuperNodes online",
    "start": "training: nodes joined",
    "round": "training: rounds",
    "done": "training: done",
}


# the options both `accord train` and `accord demo train` take
MODEL_OPTION = typer.Option(
    "trust",
    "--model",
    help="trust (the label node's 0/1 outcome: a calibrated trust score) or ltv (its spend "
    "label: a ZILN lifetime-value model with an interval).",
)
ROUNDS_OPTION = typer.Option(
    None, "--rounds", help="Training exchanges (default: 20 for trust and for ltv)."
)
SEED_OPTION = typer.Option(0, "--seed")


def _checked_rounds(model_kind: str, rounds: int | None) -> int:
    """The exchanges to train ``model_kind`` for, or a readable ConfigError."""
    from accord.errors import ConfigError

    if model_kind not in DEFAULT_ROUNDS:
        raise ConfigError("--model must be trust or ltv")
    rounds = rounds if rounds is not None else DEFAULT_ROUNDS[model_kind]
    if rounds < 1:
        raise ConfigError("--rounds must be at least 1")
    return rounds


def train(
    coordinator: str = typer.Option(
        ...,
        "--coordinator",
        help="host:port of the coordinator: train through its SuperLink, on every feature "
        "node's own SuperNode.",
    ),
    pki: Path = typer.Option(
        ..., "--pki", help="The operator's own folder (the coordinator's party folder)."
    ),
    model_kind: str = MODEL_OPTION,
    rounds: int | None = ROUNDS_OPTION,
    seed: int = SEED_OPTION,
    alignment_run: str | None = typer.Option(None, "--alignment-run", help="Default: the newest."),
) -> None:
    """Train the trust (or LTV) model through the coordinator, on every feature node's own
    SuperNode; publish it. Reads nothing but the operator's own folder."""
    rounds = _checked_rounds(model_kind, rounds)
    _train_through_coordinator(coordinator, pki, model_kind, rounds, seed, alignment_run)


def demo_train(
    network_dir: Path = typer.Option(
        Path(".demo"),
        "--network-dir",
        help="Where the network lives (as `accord demo` lays it out).",
    ),
    alignment_run: str | None = typer.Option(None, "--alignment-run", help="Default: the newest."),
    model_kind: str = MODEL_OPTION,
    rounds: int | None = ROUNDS_OPTION,
    seed: int = SEED_OPTION,
    pki: Path | None = typer.Option(
        None,
        "--pki",
        help="The folder `accord pki init --dir` made (default: <network-dir>/pki).",
    ),
    out: Path = typer.Option(
        Path("train-report"), "--out", help="Folder for the calibration plot and model.json."
    ),
    db: str | None = typer.Option(
        None, "--db", help="The coordinator's database URL (default: its SQLite file)."
    ),
    runtime: str = typer.Option(
        "simulation",
        "--runtime",
        help="simulation (one process, Flower's simulation runtime) or deployment (a SuperLink "
        "and one SuperNode per feature node, TLS and SuperNode authentication).",
    ),
) -> None:
    """Train on a network laid out on this machine (`accord demo`, the tests' networks):
    reads every party's folder, so it is the demo's, not a party's command."""
    from accord.errors import ConfigError

    if runtime not in ("simulation", "deployment"):
        raise ConfigError("--runtime must be simulation or deployment")
    rounds = _checked_rounds(model_kind, rounds)
    from dataclasses import replace

    from accord.launch.train_job import NetworkLayout, train_network
    from accord.scoring.ltv.federated import LTV_SPLIT
    from accord.scoring.split_model import SplitConfig

    config = replace(LTV_SPLIT if model_kind == "ltv" else SplitConfig(), rounds=rounds)
    layout = NetworkLayout(network_dir, pki)
    if runtime == "deployment":
        _train_on_deployment_engine(layout, alignment_run, config, seed, db)
        return

    console = Console()
    with Progress(*counted_columns(), console=console) as progress:
        task = progress.add_task("training: starting Flower", total=rounds)

        def report(stage: str, done: int, total: int, values: dict[str, float]) -> None:
            progress.update(task, description=STAGES.get(stage, stage), completed=done, total=total)

        result = train_network(
            layout,
            alignment_run=alignment_run,
            config=config,
            seed=seed,
            out=out,
            db_url=db,
            progress=report,
        )
    model = result.model
    table = _model_table(model.kind, model.model_id, result.ledger_index, model.metrics)
    table.add_row("rounds (exchanges)", str(model.report.rounds))
    table.add_row("rounds redone", str(model.report.redone_rounds))
    table.add_row("dropped nodes", ", ".join(model.report.dropped_nodes) or "none")
    if model.kind == "ltv":
        table.add_row(
            "below k: own estimate × factor", result.own_channel_scales.summary() or "none"
        )
    table.add_row("bytes up / down", f"{model.report.bytes_up:,} / {model.report.bytes_down:,}")
    table.add_row("seconds", f"{model.report.seconds:.1f}")
    console.print(table)
    if result.plot is not None:
        what = "decile chart" if model.kind == "ltv" else "calibration plot"
        console.print(f"{what}: {result.plot}")


LTV_ROWS = (
    ("aggregate_error_pct", "held-out aggregate spend error", "{:+.2f} %"),
    ("decile_mape_pct", "held-out decile MAPE", "{:.2f} %"),
    ("gini", "held-out normalised Gini", "{:.4f}"),
    ("spearman", "held-out Spearman", "{:.4f}"),
    ("interval_coverage", "held-out spend inside the 80 % interval", "{:.1%}"),
)
TRUST_ROWS = (
    ("auc", "held-out AUC", "{:.4f}"),
    ("ece", "held-out ECE (10 bins)", "{:.4f}"),
)


def _model_table(kind: str, model_id: object, index: object, metrics: object) -> Table:
    """The held-out measures of a trained model, whichever runtime trained it."""
    values = metrics if isinstance(metrics, dict) else {}
    table = Table(
        title=f"{'LTV' if kind == 'ltv' else 'Trust'} model {model_id} (ledger index {index})"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, label, shown in (
        *(LTV_ROWS if kind == "ltv" else TRUST_ROWS),
        ("scored_fraction", "held-out rows scored (k ≥ 2 nodes)", "{:.1%}"),
    ):
        value = values.get(key)
        table.add_row(label, shown.format(float(value)) if value is not None else "undefined")
    return table


def _train_through_coordinator(
    coordinator: str,
    pki: Path,
    model_kind: str,
    rounds: int,
    seed: int,
    alignment_run: str | None,
) -> None:
    """Ask the coordinator to train on the nodes' own SuperNodes; show its progress, then
    the held-out measures. Reads nothing but the operator's own folder."""
    import json

    import grpc

    from accord.errors import Unavailable
    from accord.pki_layout import COORDINATOR
    from accord.proto.v1 import training_pb2, training_pb2_grpc
    from accord.rpc.client import describe_rpc_error
    from accord.rpc.tls import PartyCredentials

    credentials = PartyCredentials.load(pki)
    request = training_pb2.TrainRequest(
        model=model_kind, rounds=rounds, seed=seed, alignment_run=alignment_run or ""
    )
    console = Console()
    body: dict[str, object] = {}
    with (
        credentials.channel(coordinator, COORDINATOR) as channel,
        Progress(*counted_columns(), console=console) as progress,
    ):
        task = progress.add_task("training: waiting for the nodes' SuperNodes", total=rounds)
        try:
            for update in training_pb2_grpc.TrainingStub(channel).Train(request):
                if update.report_json:
                    body = json.loads(update.report_json)
                    progress.update(task, description=STAGES["done"], completed=rounds)
                    break
                progress.update(
                    task, description=STAGES.get(update.stage, update.stage), completed=update.round
                )
        except grpc.RpcError as err:
            raise Unavailable(describe_rpc_error(err, f"coordinator at {coordinator}")) from err
    dropped = body.get("dropped_nodes")
    table = _model_table(
        model_kind, body.get("model_id"), body.get("ledger_index"), body.get("metrics")
    )
    table.add_row("Flower exchanges", str(body.get("exchanges")))
    table.add_row("seconds per exchange", str(body.get("seconds_per_exchange")))
    table.add_row(
        "dropped nodes", ", ".join(dropped) if isinstance(dropped, list) and dropped else "none"
    )
    table.add_row("run seconds", str(body.get("seconds")))
    console.print(table)


def _train_on_deployment_engine(
    layout: NetworkLayout,
    alignment_run: str | None,
    config: SplitConfig,
    seed: int,
    db: str | None,
) -> None:
    """The same training through Flower's Deployment Engine, with a Rich progress bar."""
    from accord.coordinator.deployment import run_on_deployment_engine
    from accord.coordinator.training import load_training_set
    from accord.launch.train_job import latest_alignment_run

    endpoint = layout.coordinator_endpoint()
    engine = layout.coordinator_engine(db)
    run = alignment_run or latest_alignment_run(engine)
    nodes = load_training_set(engine, run, seed=seed).nodes
    engine.dispose()
    console = Console()
    with Progress(*counted_columns(), console=console) as progress:
        task = progress.add_task(
            "training: starting the SuperLink and SuperNodes", total=config.rounds
        )

        def report(_deployment: object, snapshot: dict[str, object]) -> None:
            stage = str(snapshot.get("stage", ""))
            done = snapshot.get("round", 0)
            progress.update(
                task,
                description=STAGES.get(stage, stage),
                completed=done if isinstance(done, int) else 0,
            )

        body = run_on_deployment_engine(
            layout.root,
            layout.pki_dir,
            layout.coordinator_dir,
            endpoint,
            layout.node_settings(nodes, endpoint),
            alignment_run=run,
            seed=seed,
            rounds=config.rounds,
            config=config,
            coordinator_db=db,
            on_progress=report,
        )
    timings = body.get("timings")
    times = timings if isinstance(timings, dict) else {}
    dropped = body.get("dropped_nodes")
    kind = "ltv" if config.head == "ziln" else "trust"
    table = _model_table(kind, body.get("model_id"), body.get("ledger_index"), body.get("metrics"))
    table.add_row("Flower exchanges", str(body.get("exchanges")))
    table.add_row("seconds per exchange", str(body.get("seconds_per_exchange")))
    table.add_row(
        "dropped nodes", ", ".join(dropped) if isinstance(dropped, list) and dropped else "none"
    )
    table.add_row("run seconds", str(times.get("run_s")))
    table.add_row("total seconds (with SuperLink/SuperNode start)", str(times.get("total_s")))
    console.print(table)
    flower = body.get("flower")
    console.print(f"Flower logs: {flower.get('logs') if isinstance(flower, dict) else '-'}")
