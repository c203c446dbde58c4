"""Trained models at the coordinator: stored with their provenance, recorded on the ledger."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import Engine, insert, select
from sqlmodel import Session

from accord.clock import Clock, system_clock
from accord.consent.events import Record
from accord.coordinator.models import ModelVersion
from accord.coordinator.training import HeadCalibrated, TrainedModel
from accord.errors import NotFound
from accord.ledger_writer import EventLedger
from accord.rpc.roles import COORDINATOR
from accord.scoring.calibration import (
    Calibrator,
    SpendScale,
    calibrator_from_dict,
    spend_scale_from_dict,
)
from accord.scoring.split_model import SplitConfig, TopTrainer


def save_model(
    engine: Engine,
    ledger: EventLedger,
    model: TrainedModel,
    *,
    alignment_run: str,
    consents_as_of: int,
    own_channel_scales: Mapping[str, float] | None = None,
    clock: Clock = system_clock,
) -> int:
    """Store the model and append a model.version record; return its ledger index.

    ``own_channel_scales`` (LTV): each channel's factor for its own spend estimate, used when
    that channel alone holds a customer (:mod:`accord.coordinator.own_spend`)."""
    scales = {c: float(v) for c, v in (own_channel_scales or {}).items()}
    now = int(clock())
    body = {
        "model": model.model_id,
        "kind": model.kind,
        "alignmentRun": alignment_run,
        "trainingRun": model.report.run_id,
        "nodes": model.nodes,
        "metrics": {k: round(v, 6) for k, v in model.metrics.items()},
        "consentsAsOf": consents_as_of,
        "droppedNodes": model.report.dropped_nodes,
    }
    if scales:
        body["ownChannelScales"] = {c: round(v, 6) for c, v in sorted(scales.items())}
    (index,) = ledger.append([Record(COORDINATOR, "model.version", now, body)])
    with engine.begin() as conn:
        conn.execute(
            insert(ModelVersion),
            [
                {
                    "model_id": model.model_id,
                    "kind": model.kind,
                    "alignment_run": alignment_run,
                    "training_run": model.report.run_id,
                    "created_at": now,
                    "nodes": json.dumps(model.nodes),
                    "config": json.dumps(model.config.to_dict()),
                    "top_state": model.top.to_bytes(),
                    "calibrator": json.dumps(model.calibrator.to_dict()),
                    "metrics": json.dumps(model.metrics),
                    "report": json.dumps(model.report.to_dict()),
                    "consents_as_of": consents_as_of,
                    "ledger_index": index,
                    "own_channel_scales": json.dumps(scales),
                }
            ],
        )
    return index


@dataclass
class LoadedModel(HeadCalibrated):
    model_id: str
    alignment_run: str
    nodes: list[str]
    config: SplitConfig
    top: TopTrainer
    calibrator: Calibrator | SpendScale
    metrics: dict[str, float]
    ledger_index: int | None
    own_channel_scales: dict[str, float] = field(default_factory=dict)


def load_model(engine: Engine, model_id: str | None = None, kind: str = "trust") -> LoadedModel:
    """A stored model (the newest of ``kind`` when no id is given)."""
    with Session(engine) as session:
        query = select(ModelVersion).where(ModelVersion.kind == kind)  # type: ignore[arg-type]
        if model_id is not None:
            query = query.where(ModelVersion.model_id == model_id)  # type: ignore[arg-type]
        row = session.exec(query.order_by(ModelVersion.created_at.desc())).first()  # type: ignore[attr-defined, call-overload]
    if row is None:
        what = "LTV model" if kind == "ltv" else "model"
        flag = " --model ltv" if kind == "ltv" else ""
        raise NotFound(f"no trained {what} yet: run `accord train{flag}` after an alignment")
    row = row[0] if not isinstance(row, ModelVersion) else row
    config = SplitConfig.from_dict(json.loads(row.config))
    nodes = json.loads(row.nodes)
    top = TopTrainer(len(nodes), config, seed=0)
    top.restore(row.top_state)
    return LoadedModel(
        row.model_id,
        row.alignment_run,
        nodes,
        config,
        top,
        (spend_scale_from_dict if kind == "ltv" else calibrator_from_dict)(
            json.loads(row.calibrator)
        ),
        json.loads(row.metrics),
        row.ledger_index,
        {str(c): float(v) for c, v in json.loads(row.own_channel_scales or "{}").items()},
    )
