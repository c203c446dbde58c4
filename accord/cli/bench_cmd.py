"""`accord bench`: measurements that print one JSON object on the last line of stdout."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress

from accord.data.shared import find_shared, missing_message
from accord.errors import ConfigError

app = typer.Typer(help="Benchmarks; each prints one JSON line last.", no_args_is_help=True)


UCI_PARTS = ("data", "uci_credit_card", "UCI_Credit_Card.csv")
CDNOW_PARTS = ("data", "cdnow", "CDNOW_master.txt")


def _shared_or(given: Path | None, what: str, *parts: str) -> Path:
    """The file the user named, or the shared data set's copy; a readable error otherwise."""
    if given is not None:
        if not given.exists():
            raise ConfigError(f"{given} does not exist: give {what} with --source")
        return given
    found = find_shared(*parts)
    if found is None:
        raise ConfigError(missing_message(what, *parts))
    return found


def emit(result: dict[str, object]) -> None:
    print(json.dumps(result, sort_keys=True), flush=True)


@app.command("ledger")
def ledger(
    entries: int = typer.Option(20_000, "--entries", help="Entries to append."),
    clients: int = typer.Option(16, "--clients", help="Concurrent gRPC clients."),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: a fresh SQLite file)."
    ),
) -> None:
    """Durable ledger appends vs plain inserts into the same database; proof and verify times."""
    if entries < 1 or clients < 1:
        raise ConfigError("--entries and --clients must be positive")
    console = Console(stderr=True)
    with Progress(console=console) as progress:
        from accord.bench.ledger import run_ledger_bench  # heavy imports only when used

        result = run_ledger_bench(entries, clients, db, progress)
    emit(result.as_json())


@app.command("psi")
def psi(n: int = typer.Option(100_000, "--n", help="Customers at each of the two nodes.")) -> None:
    """Accord's PSI alignment between two node processes vs openmined-psi on the same sets."""
    console = Console(stderr=True)
    with Progress(console=console) as progress:
        from accord.bench.psi import run_psi_bench

        result = run_psi_bench(n, progress)
    emit(result.as_json())


@app.command("train")
def train(
    scenario: str = typer.Option("uci-credit", "--scenario", help="uci-credit"),
    coverage: str = typer.Option("full", "--coverage", help="full or realistic"),
    seed: int = typer.Option(0, "--seed"),
    source: Path | None = typer.Option(
        None, "--source", help="The real UCI file (default: found in ../shared)."
    ),
) -> None:
    """Federated (Flower) vs centralized vs single-channel trust models on DESIGN.md's split."""
    if scenario != "uci-credit":
        raise ConfigError("--scenario must be uci-credit (cdnow is `accord bench ltv`)")
    if coverage not in ("full", "realistic"):
        raise ConfigError("--coverage must be full or realistic")
    source = _shared_or(source, "the UCI file", *UCI_PARTS)
    from accord.bench.train import run_train_bench

    emit(run_train_bench(source, coverage, seed))  # type: ignore[arg-type]


@app.command("score")
def score(
    requests: int = typer.Option(2000, "--requests", help="Scoring requests (closed loop)."),
    concurrency: int = typer.Option(16, "--concurrency", help="Concurrent touchpoints."),
    rate: float | None = typer.Option(
        None, "--rate", help="Open loop: requests per second, whatever the answers."
    ),
    seconds: float = typer.Option(20.0, "--seconds", help="Open loop: how long to send."),
) -> None:
    """End-to-end scoring latency (credential, fan-out, masked sum) vs a no-work fan-out, with
    each process's CPU per request."""
    if requests < 1 or concurrency < 1:
        raise ConfigError("--requests and --concurrency must be positive")
    if rate is not None and (rate <= 0 or seconds <= 0 or rate * seconds < 1):
        raise ConfigError("--rate and --seconds must be positive (at least one request)")
    from accord.bench.score import Load, run_score_bench

    load = Load(requests, concurrency, rate, seconds if rate is not None else 0.0)
    with Progress(console=Console(stderr=True)) as progress:
        emit(run_score_bench(load, progress))


@app.command("ltv")
def ltv(
    scenario: str = typer.Option("cdnow", "--scenario", help="cdnow"),
    source: Path | None = typer.Option(
        None, "--source", help="The CDNOW transaction log (default: found in ../shared)."
    ),
    chart: Path = typer.Option(Path("ltv-deciles.png"), "--chart", help="Decile chart (PNG)."),
) -> None:
    """Split-learning LTV (ZILN head) vs BG/NBD + Gamma-Gamma on the CDNOW omnichannel split."""
    if scenario != "cdnow":
        raise ConfigError("--scenario must be cdnow (uci-credit is `accord bench train`)")
    source = _shared_or(source, "CDNOW_master.txt", *CDNOW_PARTS)
    from accord.bench.ltv_experiment import run_ltv_experiment

    result = run_ltv_experiment(data_path=source, chart_path=chart)
    emit(result.as_dict())


@app.command("zkp")
def zkp(
    runs: int = typer.Option(200, "--runs", help="Repetitions of each timed operation."),
    reference_runs: int = typer.Option(
        3, "--reference-runs", help="Verifications by the slow py-ecc reference."
    ),
) -> None:
    """BBS sign, prove and verify over 10 messages (1..10 disclosed) vs py-ecc and a pairing."""
    if runs < 1 or reference_runs < 1:
        raise ConfigError("--runs and --reference-runs must be positive")
    from accord.bench.zkp import run_zkp_bench

    emit(run_zkp_bench(runs, reference_runs).as_json())


@app.command("soak")
def soak(
    minutes: float = typer.Option(10.0, "--minutes", help="How long the load runs."),
    seconds: float | None = typer.Option(
        None, "--seconds", help="The run's length in seconds instead (short runs, tests)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the fault plan and the load."),
    coordinator_db: str = typer.Option(
        "sqlite", "--coordinator-db", help="sqlite, or postgres (the local 127.0.0.1:5432)."
    ),
    customers: int = typer.Option(1000, "--customers", help="Synthetic customers."),
    rate: float = typer.Option(4.0, "--rate", help="Scoring requests a second."),
    fault_every: float = typer.Option(40.0, "--fault-every", help="Seconds between faults."),
    churn_every: float = typer.Option(
        1.0, "--churn-every", help="Seconds between consent grants (and revocations) per node."
    ),
    train_rounds: int = typer.Option(3, "--train-rounds", help="Rounds of the setup's training."),
    scoring: bool = typer.Option(
        True, "--scoring/--no-scoring", help="Without scoring: consent churn alone, no training."
    ),
) -> None:
    """Scoring load and consent churn while each node and the coordinator are SIGKILLed and
    restarted: answers, errors, recovery times, lost appends, checkpoint consistency, memory."""
    length = seconds if seconds is not None else minutes * 60
    if min(length, rate, fault_every, churn_every, train_rounds) <= 0 or customers < 50:
        raise ConfigError(
            "--minutes/--seconds, --rate, --fault-every, --churn-every and --train-rounds must "
            "be positive, --customers at least 50"
        )
    if coordinator_db not in ("sqlite", "postgres"):
        raise ConfigError("--coordinator-db must be sqlite or postgres")
    from accord.bench.soak import SoakConfig, run_soak

    config = SoakConfig(
        seconds=length,
        seed=seed,
        coordinator_db=coordinator_db,
        customers=customers,
        rate=rate,
        churn_every_s=churn_every,
        fault_every_s=fault_every,
        train_rounds=train_rounds,
        scoring=scoring,
    )
    with Progress(console=Console(stderr=True)) as progress:
        emit(run_soak(config, progress))


@app.command("experiments")
def experiments(
    aa_runs: int = typer.Option(1000, "--aa-runs", help="Seeded A/A experiments per metric."),
    ab_runs: int = typer.Option(1000, "--ab-runs", help="Seeded A/B experiments per metric."),
    peek_every: int = typer.Option(100, "--peek-every", help="Arrivals between two peeks."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The always-valid test on the seeded market: A/A false positives under continuous peeking,
    power at the declared sample size with a true effect of the MDE, and the sample-ratio check."""
    if aa_runs < 1 or ab_runs < 1 or peek_every < 1:
        raise ConfigError("--aa-runs, --ab-runs and --peek-every must be positive")
    from accord.bench.experiments import run_experiments_bench

    with Progress(console=Console(stderr=True)) as progress:
        emit(run_experiments_bench(aa_runs, ab_runs, peek_every, seed, progress))
