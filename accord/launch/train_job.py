"""`accord train` as a library: train the trust (or LTV) model on a network laid out by
`accord demo` or :class:`accord.launcher.LocalNetwork`, on Flower's simulation runtime, and
publish it.

Layout: ``<dir>/coordinator`` (its data: database, endpoint file), ``<dir>/nodes/<channel>``
(each node's data directory), ``<dir>/pki/<party>``. The ClientApp of each feature node reads
only that node's store, through its consent gate; the ServerApp runs here with the coordinator's
identity, stores the model and records it on the ledger.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import Engine, text

from accord.audit import LedgerClient
from accord.coordinator.model_store import save_model
from accord.coordinator.own_spend import OwnChannelScales, scales_for_model
from accord.coordinator.training import TrainedModel, load_training_set
from accord.errors import ConfigError, NotFound
from accord.launch.simulation import partition_factory, train_in_simulation
from accord.ledger_writer import LedgerWriter
from accord.node.participant import participant_from_settings
from accord.pki_layout import COORDINATOR, load_coordinator_verifier
from accord.rpc.endpoint import ENDPOINT_FILE
from accord.rpc.tls import PartyCredentials
from accord.scoring import ziln
from accord.scoring.ltv.metrics import decile_chart
from accord.scoring.metrics import calibration_curve, plot_calibration
from accord.scoring.split_model import SplitConfig
from accord.store.engine import make_engine, sqlite_url


@dataclass(frozen=True)
class NetworkLayout:
    root: Path
    pki_root: Path | None = None  # the folder `accord pki init --dir` made; default root/pki

    @property
    def coordinator_dir(self) -> Path:
        return self.root / "coordinator"

    @property
    def pki_dir(self) -> Path:
        return self.pki_root if self.pki_root is not None else self.root / "pki"

    def pki(self, party: str) -> Path:
        return self.pki_dir / party

    def node_dir(self, channel: str) -> Path:
        return self.root / "nodes" / channel

    def node_settings(self, channels: Sequence[str], endpoint: str) -> dict[str, dict[str, str]]:
        """What a feature node's ClientApp needs: its data, its PKI folder, the coordinator."""
        return {
            channel: {
                "channel": channel,
                "data-dir": str(self.node_dir(channel)),
                "pki": str(self.pki(channel)),
                "coordinator": endpoint,
            }
            for channel in channels
        }

    def coordinator_endpoint(self) -> str:
        path = self.coordinator_dir / ENDPOINT_FILE
        if not path.exists():
            raise ConfigError(f"{path} is missing: is the coordinator running?")
        return path.read_text().strip()

    def coordinator_engine(self, db_url: str | None = None) -> Engine:
        return make_engine(db_url or sqlite_url(self.coordinator_dir / "coordinator.db"))


def latest_alignment_run(engine: Engine) -> str:
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT run_id FROM alignment_run ORDER BY created_at DESC LIMIT 1")
        ).first()
    if row is None:
        raise NotFound("no alignment run yet: run `accord align` first")
    return str(row[0])


@dataclass
class TrainResult:
    model: TrainedModel
    alignment_run: str
    ledger_index: int
    plot: Path | None
    own_channel_scales: OwnChannelScales


def _plot(model: TrainedModel, labels: np.ndarray, out: Path) -> Path | None:
    """Trust: the calibration curve of the held-out rows. LTV: predicted vs actual spend per
    decile of the held-out rows the model scored."""
    rows = model.evaluated_rows
    outputs = model.evaluated_logits
    if model.kind == "ltv":
        ok = ~np.isnan(outputs).any(axis=1)
        if ok.sum() < 10:
            return None
        params = model.spend_scale.apply(ziln.params_from_output_array(outputs[ok]))
        return decile_chart(
            out / "deciles.png",
            {"federated (masked sums)": params.expected()},
            labels[rows][ok],
            title=f"LTV model {model.model_id}: held-out customers",
        )
    ok = ~np.isnan(outputs)
    y = labels[rows][ok]
    raw = 1.0 / (1.0 + np.exp(-outputs[ok]))
    calibrated = model.trust_calibrator.probabilities(outputs[ok])
    return plot_calibration(
        {
            "before calibration": calibration_curve(y, raw),
            "calibrated": calibration_curve(y, calibrated),
        },
        out / "calibration.png",
        title=f"Trust model {model.model_id}: held-out customers",
    )


def train_network(
    layout: NetworkLayout,
    *,
    alignment_run: str | None = None,
    config: SplitConfig | None = None,
    seed: int = 0,
    out: Path | None = None,
    db_url: str | None = None,
    progress: Callable[[str, int, int, dict[str, float]], None] = lambda *a: None,
) -> TrainResult:
    engine = layout.coordinator_engine(db_url)
    run = alignment_run or latest_alignment_run(engine)
    data = load_training_set(engine, run, seed=seed)
    endpoint = layout.coordinator_endpoint()
    settings = layout.node_settings(data.nodes, endpoint)
    credentials = PartyCredentials.load(layout.pki(COORDINATOR))
    with credentials.channel(endpoint, COORDINATOR) as channel:
        as_of = (
            LedgerClient(channel, load_coordinator_verifier(layout.pki(COORDINATOR)), endpoint)
            .checkpoint()
            .checkpoint.size
        )
    model = train_in_simulation(
        data,
        partition_factory(data.nodes, lambda c, _ctx: participant_from_settings(settings[c])),
        config or SplitConfig(),
        seed=seed,
        run_id=f"train-{np.random.default_rng().integers(1 << 62):x}",
        progress=progress,
    )
    scales = scales_for_model(engine, credentials, data, model)
    writer = LedgerWriter(credentials, endpoint, COORDINATOR)
    try:
        index = save_model(
            engine,
            writer,
            model,
            alignment_run=run,
            consents_as_of=as_of,
            own_channel_scales=scales.scales,
        )
    finally:
        writer.close()
    plot = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot = _plot(model, data.labels, out)
        (out / "model.json").write_text(
            json.dumps(
                {
                    "model": model.model_id,
                    "alignmentRun": run,
                    "ledgerIndex": index,
                    "metrics": model.metrics,
                    "report": model.report.to_dict(),
                    "ownChannelScales": scales.scales,
                },
                indent=2,
            )
        )
    return TrainResult(model, run, index, plot, scales)
