"""The coordinator's ServerApp as a module-level object, for Flower's Deployment Engine.

``flwr run`` submits an app whose ``serverapp`` is ``accord.coordinator.flower_app:app``; the
SuperLink starts it in a process of its own, with the run's ``run_config``:

| key | meaning |
|---|---|
| ``coordinator-data`` | the coordinator's data directory (its database, and ``training/``) |
| ``coordinator-db`` | database URL; empty: ``<coordinator-data>/coordinator.db`` |
| ``coordinator-pki`` | the coordinator's party folder (mTLS credentials, verifier key) |
| ``coordinator-endpoint`` | host:port of the running coordinator (its ledger) |
| ``alignment-run`` | the alignment run to train on; empty: the newest |
| ``run-id`` | Accord's training-run id; empty: a fresh one |
| ``seed`` | seed of the split, the party seeds and the round plans |
| ``rounds`` | exchanges of federated training; 0: :class:`SplitConfig`'s default |
| ``split-config`` | JSON object of further :class:`SplitConfig` settings; empty: none |
| ``timeout-s`` | how long one exchange waits for a node before counting it as failed |
| ``report`` | the JSON run report; empty: ``<coordinator-data>/training/<run-id>.json`` |

The app loads the alignment run's keys and labels (no features), drives :class:`TrainingRun`
over :class:`FlowerLink`, stores the model with :func:`save_model` (a ``model.version`` record on
the ledger, written in the coordinator's name) and writes the run report, also when the run
fails, so whoever started it learns the outcome without reading Flower's logs. While it runs,
``<report>.progress.json`` says which stage and round it is at.
"""

from __future__ import annotations

import json
import os
import time
import traceback
import uuid
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt
from flwr.app import Context, Message
from flwr.serverapp import Grid, ServerApp
from sqlalchemy import Engine, text

from accord.audit import LedgerClient
from accord.coordinator.flower_server import FlowerLink
from accord.coordinator.model_store import save_model
from accord.coordinator.own_spend import scales_for_model
from accord.coordinator.training import NodeFailed, TrainingRun, load_training_set
from accord.errors import ConfigError, NotFound, NotPermitted
from accord.ledger_writer import LedgerWriter
from accord.pki_layout import COORDINATOR, load_coordinator_verifier
from accord.rpc.tls import PartyCredentials
from accord.scoring.split_model import SplitConfig
from accord.store.engine import make_engine, sqlite_url

REPORT_DIR = "training"
PROGRESS_SUFFIX = ".progress.json"

Call = tuple[str, dict[str, object], dict[str, npt.NDArray[np.generic]] | None]


def report_path(coordinator_data: Path, run_id: str) -> Path:
    """Where the ServerApp writes the report of training run ``run_id`` by default."""
    return coordinator_data / REPORT_DIR / f"{run_id}.json"


def progress_path(report: Path) -> Path:
    return report.with_name(report.name.removesuffix(".json") + PROGRESS_SUFFIX)


def write_json(path: Path, body: Mapping[str, object]) -> None:
    """Replace ``path`` atomically, so a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(body, indent=2, sort_keys=True))
    partial.replace(path)


class TimedFlowerLink(FlowerLink):
    """:class:`FlowerLink` that counts exchanges (one ``send_and_receive`` each) and their time."""

    def __init__(self, grid: Grid, expected: list[str], timeout_s: float) -> None:
        self.exchanges = 0
        self.exchange_seconds = 0.0
        self.kinds: dict[str, int] = {}
        self.log: list[tuple[str, int, float]] = []  # (message type, nodes, seconds)
        super().__init__(grid, expected, timeout_s)

    def _send(self, calls: Mapping[int, Call]) -> dict[int, Message | NodeFailed]:
        started = time.perf_counter()
        try:
            return super()._send(calls)
        finally:
            seconds = time.perf_counter() - started
            self.exchanges += 1
            self.exchange_seconds += seconds
            kinds = sorted({kind for kind, _, _ in calls.values()})
            for kind in kinds:
                self.kinds[kind] = self.kinds.get(kind, 0) + 1
            self.log.append(("+".join(kinds), len(calls), round(seconds, 3)))


def _setting(config: Mapping[str, object], key: str, default: object = None) -> object:
    if key in config:
        return config[key]
    if default is None:
        raise ConfigError(f"run config lacks {key!r} (set it with `flwr run --run-config`)")
    return default


def _newest_alignment_run(engine: Engine) -> str:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT run_id FROM alignment_run ORDER BY created_at DESC LIMIT 1")
        ).first()
    if row is None:
        raise NotFound("no alignment run yet: run `accord align` first")
    return str(row[0])


def _split_config(config: Mapping[str, object]) -> SplitConfig:
    raw = str(_setting(config, "split-config", "") or "")
    values: dict[str, object] = json.loads(raw) if raw else {}
    rounds = int(_setting(config, "rounds", 0))  # type: ignore[call-overload]
    if rounds:
        values["rounds"] = rounds
    return SplitConfig.from_dict(values)


def train(config: Mapping[str, object], grid: Grid, flower_run_id: int) -> dict[str, object]:
    """One training run from ``run_config``; returns the report it wrote."""
    data_dir = Path(str(_setting(config, "coordinator-data")))
    run_id = str(_setting(config, "run-id", "") or "") or f"train-{uuid.uuid4().hex[:16]}"
    report_file = Path(str(_setting(config, "report", "") or "") or report_path(data_dir, run_id))
    started = time.perf_counter()
    body: dict[str, object] = {
        "run_id": run_id,
        "flower_run_id": flower_run_id,
        "engine": "flower-deployment",
        "status": "running",
    }

    def progress(stage: str, done: int, total: int, values: dict[str, float]) -> None:
        write_json(
            progress_path(report_file),
            {
                "stage": stage,
                "round": done,
                "rounds": total,
                "values": values,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )

    try:
        pki = Path(str(_setting(config, "coordinator-pki")))
        endpoint = str(_setting(config, "coordinator-endpoint"))
        db = str(_setting(config, "coordinator-db", "") or "")
        seed = int(_setting(config, "seed", 0))  # type: ignore[call-overload]
        timeout_s = float(_setting(config, "timeout-s", 300.0))  # type: ignore[arg-type]
        split = _split_config(config)
        engine = make_engine(db or sqlite_url(data_dir / "coordinator.db"))
        alignment_run = str(_setting(config, "alignment-run", "") or "") or _newest_alignment_run(
            engine
        )
        body["alignment_run"] = alignment_run
        data = load_training_set(engine, alignment_run, seed=seed)
        credentials = PartyCredentials.load(pki)
        with credentials.channel(endpoint, COORDINATOR) as channel:
            as_of = (
                LedgerClient(channel, load_coordinator_verifier(pki), endpoint)
                .checkpoint()
                .checkpoint.size
            )
        progress("connect", 0, split.rounds, {})
        link = TimedFlowerLink(grid, data.nodes, timeout_s)
        body["flower_nodes"] = {c: str(i) for c, i in link.node_ids.items()}
        model = TrainingRun(link, data, split, seed=seed, run_id=run_id, progress=progress).run()
        scales = scales_for_model(engine, credentials, data, model)
        writer = LedgerWriter(credentials, endpoint, COORDINATOR)
        try:
            index = save_model(
                engine,
                writer,
                model,
                alignment_run=alignment_run,
                consents_as_of=as_of,
                own_channel_scales=scales.scales,
            )
        finally:
            writer.close()
        engine.dispose()
        body.update(
            status="completed",
            model_id=model.model_id,
            ledger_index=index,
            consents_as_of=as_of,
            nodes=model.nodes,
            metrics=model.metrics,
            own_channel_scales=scales.scales,
            dropped_nodes=list(model.report.dropped_nodes),
            report=model.report.to_dict(),
            exchanges=link.exchanges,
            exchange_kinds=link.kinds,
            exchange_log=link.log,
            exchange_seconds=round(link.exchange_seconds, 3),
            seconds_per_exchange=round(link.exchange_seconds / max(link.exchanges, 1), 3),
        )
    except Exception as exc:
        body.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
        raise
    finally:
        body["seconds"] = round(time.perf_counter() - started, 3)
        write_json(report_file, body)
    return body


app = ServerApp()


# Set by the coordinator's standing SuperLink (:mod:`accord.coordinator.fleet`): runs must then
# carry a ticket the coordinator's Training service wrote, one use each.
TICKETS_ENV = "ACCORD_FLEET_TICKETS"
TICKET_SETTINGS = (
    "coordinator-data",
    "coordinator-db",
    "coordinator-pki",
    "coordinator-endpoint",
    "report",
)


def redeem_ticket(config: Mapping[str, object], tickets: Path) -> dict[str, object]:
    """The run config with the coordinator's own settings from its ticket (which is used up).

    A run submitted to the SuperLink by anyone but the coordinator's Training service has no
    ticket and is refused before it touches the coordinator's data; the paths a run uses come
    from the ticket, never from the submitter.
    """
    ticket = str(config.get("ticket", ""))
    if not ticket or not ticket.isalnum() or len(ticket) > 64:
        raise NotPermitted("this run was not started by the coordinator (no valid ticket)")
    path = tickets / ticket
    try:
        settings = json.loads(path.read_text())
        path.unlink()
    except FileNotFoundError:
        raise NotPermitted("this run's ticket is unknown or was used already") from None
    merged = {k: v for k, v in config.items() if k not in TICKET_SETTINGS}
    merged.update({k: settings[k] for k in TICKET_SETTINGS if k in settings})
    return merged


@app.main()
def main(grid: Grid, context: Context) -> None:
    config: dict[str, object] = dict(context.run_config)
    tickets = os.environ.get(TICKETS_ENV)
    if tickets:
        config = redeem_ticket(config, Path(tickets))
    train(config, grid, int(context.run_id))


__all__ = ["TICKETS_ENV", "app", "progress_path", "redeem_ticket", "report_path", "train"]
