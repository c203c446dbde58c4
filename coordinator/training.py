"""The coordinator's side of federated training: plan rounds, sum masked embeddings, learn.

Transport-agnostic: the Flower ServerApp (:mod:`accord.coordinator.flower_server`) and the
in-process tests drive the same :class:`TrainingRun` through a :class:`NodeLink`. Each round asks
the participating feature nodes for their masked matrices (every aligned training row in one
exchange: few rounds, several local passes, as FedBCD), decodes only their sum, steps the top
model against the labels and sends each node the gradient of the sum at its own positions.

P2: rows held by fewer than two feature nodes never enter a round (the label node has no
features to add), and a customer keeps one set of contributing nodes for the whole run, so
no two sums differ by one node's embedding. P8: a node that fails mid-round is dropped, the
round is redone with the live nodes under a new masking attempt, and the report names it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, text

from accord.crypto import masking
from accord.crypto.round_plan import bind_round_plan
from accord.errors import AccordError, InvalidInput, NotFound
from accord.scoring import ziln
from accord.scoring.calibration import Calibrator, SpendScale, fit_calibrator, fit_spend_scale
from accord.scoring.ltv.metrics import (
    aggregate_error_pct,
    decile_mape_pct,
    normalized_gini,
    spearman,
)
from accord.scoring.metrics import auc, expected_calibration_error
from accord.scoring.split_model import (
    HEAD_OUTPUTS,
    SCORE_PURPOSE,
    TRAIN_PURPOSE,
    RoundPlan,
    RoundPlanner,
    SplitConfig,
    TooFewSources,
    TopTrainer,
    party_seed,
    plan_scoring,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MAX_ATTEMPTS = 4
LTV_MEASURES: dict[str, Callable[[FloatArray, FloatArray], float]] = {
    "aggregate_error_pct": aggregate_error_pct,
    "decile_mape_pct": decile_mape_pct,
    "gini": normalized_gini,
    "spearman": spearman,
}


class NodeFailed(AccordError):
    """A node did not answer (down, timed out, or refused)."""


@dataclass(frozen=True)
class Withdrawal:
    """A node's answer that some rows' consent lapsed since the round was planned."""

    row_keys: list[bytes]


@dataclass(frozen=True)
class EmbedCall:
    """One node's request in a round. It carries the whole plan (every participant's
    positions): the node checks it and masks under the round id bound to it."""

    round_id: bytes
    purpose: str
    plan: dict[str, IntArray]
    n_rows: int
    node: str
    row_keys: list[bytes]

    @property
    def participants(self) -> list[str]:
        return list(self.plan)

    @property
    def positions(self) -> IntArray:
        return self.plan[self.node]

    @cached_property
    def mask_round_id(self) -> bytes:
        """The id the node's masks are derived under (:func:`bind_round_plan`); hashed once
        per call object, not per use."""
        return bind_round_plan(self.round_id, self.purpose, self.n_rows, self.plan)


Outcome = masking.MaskedEmbedding | Withdrawal | NodeFailed


class NodeLink(Protocol):
    """How the coordinator reaches the feature nodes of a run (Flower, or direct calls)."""

    def start(
        self,
        nodes: Sequence[str],
        run: str,
        alignment_run: str,
        config: SplitConfig,
        seeds: Mapping[str, int],
    ) -> dict[str, list[bytes] | NodeFailed]: ...

    def embed(self, run: str, calls: Mapping[str, EmbedCall]) -> dict[str, Outcome]: ...

    def backprop(
        self,
        run: str,
        round_no: int,
        calls: Mapping[str, tuple[list[bytes], npt.NDArray[np.float32]]],
    ) -> dict[str, float | NodeFailed]: ...

    def finish(
        self, nodes: Sequence[str], run: str, model_id: str
    ) -> dict[str, bool | NodeFailed]: ...


@dataclass(frozen=True)
class TrainingSet:
    """What the coordinator holds after an alignment run: keys and labels, no features."""

    alignment_run: str
    nodes: list[str]
    keys: dict[str, list[bytes | None]]  # per feature node, its row key of each aligned row
    labels: FloatArray
    validation: IntArray  # held out: fits the calibration
    test: IntArray  # held out: the reported metrics

    @property
    def held_out(self) -> IntArray:
        out: IntArray = np.union1d(self.validation, self.test).astype(np.int64)
        return out


def load_training_set(
    engine: Engine, alignment_run: str, *, holdout: float = 0.1, seed: int = 0
) -> TrainingSet:
    """Rows, per-node keys and labels of an alignment run from the coordinator's store."""
    with engine.connect() as conn:
        run = conn.execute(
            text("SELECT label_node FROM alignment_run WHERE run_id = :r"), {"r": alignment_run}
        ).first()
        if run is None:
            raise NotFound(f"no alignment run {alignment_run!r}: run `accord align` first")
        label_node = str(run[0])
        rows = conn.execute(
            text("SELECT row_key, label FROM run_label WHERE run_id = :r ORDER BY row_key"),
            {"r": alignment_run},
        ).all()
        keys = conn.execute(
            text(
                "SELECT row_key, node, node_row_key FROM aligned_row "
                "WHERE run_id = :r AND node != :l"
            ),
            {"r": alignment_run, "l": label_node},
        ).all()
    order = {bytes(k): i for i, (k, _) in enumerate(rows)}
    nodes = sorted({str(n) for _, n, _ in keys})
    per_node: dict[str, list[bytes | None]] = {n: [None] * len(rows) for n in nodes}
    for row_key, node, node_key in keys:
        per_node[str(node)][order[bytes(row_key)]] = bytes(node_key)
    labels = np.array([float(v) for _, v in rows])
    draw = np.random.default_rng([seed, 11]).random(len(rows))
    validation = np.flatnonzero(draw < holdout).astype(np.int64)
    test = np.flatnonzero((draw >= holdout) & (draw < 2 * holdout)).astype(np.int64)
    return TrainingSet(alignment_run, nodes, per_node, labels, validation, test)


@dataclass
class RunReport:
    run_id: str
    rounds: int = 0
    redone_rounds: int = 0
    dropped_nodes: list[str] = field(default_factory=list)
    withdrawn_rows: int = 0
    excluded_rows: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    seconds: float = 0.0
    events: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items()}


class HeadCalibrated:
    """What a model with a head and its calibration answers, trained or loaded: its kind and
    the calibration of that kind (a mismatch is a caller's error)."""

    model_id: str
    config: SplitConfig
    calibrator: Calibrator | SpendScale

    @property
    def kind(self) -> str:
        return model_kind(self.config)

    @property
    def trust_calibrator(self) -> Calibrator:
        if isinstance(self.calibrator, SpendScale):
            raise InvalidInput(f"{self.model_id} is an LTV model, not a trust model")
        return self.calibrator

    @property
    def spend_scale(self) -> SpendScale:
        if not isinstance(self.calibrator, SpendScale):
            raise InvalidInput(f"{self.model_id} is a trust model, not an LTV model")
        return self.calibrator


@dataclass
class TrainedModel(HeadCalibrated):
    """A finished run: the top model, its calibration and held-out metrics. ``kind`` follows the
    head: ``trust`` (binary: a calibrated default probability) or ``ltv`` (ZILN: spend)."""

    model_id: str
    config: SplitConfig
    nodes: list[str]
    top: TopTrainer
    calibrator: Calibrator | SpendScale
    metrics: dict[str, float]
    report: RunReport
    # The held-out rows (validation, then test) and the head's output for each: a logit
    # (trust) or a row of three ZILN numbers (ltv); NaN where fewer than k nodes held the row.
    evaluated_rows: IntArray
    evaluated_logits: FloatArray


def model_kind(config: SplitConfig) -> str:
    return "ltv" if config.head == "ziln" else "trust"


Progress = Callable[[str, int, int, dict[str, float]], None]


class TrainingRun:
    def __init__(
        self,
        link: NodeLink,
        data: TrainingSet,
        config: SplitConfig,
        *,
        seed: int = 0,
        run_id: str | None = None,
        progress: Progress = lambda stage, done, total, values: None,
    ) -> None:
        if len(data.nodes) < config.min_contributors:
            raise TooFewSources(
                f"{len(data.nodes)} feature node(s) cannot give sums over {config.min_contributors}"
            )
        self.link = link
        self.data = data
        self.config = config
        self.seed = seed
        self.run_id = run_id or uuid.uuid4().hex
        self.progress = progress
        self.report = RunReport(self.run_id)
        self.live = list(data.nodes)
        self.available = np.zeros((data.labels.size, len(data.nodes)), dtype=bool)

    def _node_index(self, node: str) -> int:
        return self.data.nodes.index(node)

    def _drop(self, node: str, why: str) -> None:
        if node in self.live:
            self.live.remove(node)
            self.report.dropped_nodes.append(node)
            self.report.events.append(f"{node} dropped: {why}")
            self.available[:, self._node_index(node)] = False

    def _withdraw(self, node: str, keys: list[bytes]) -> None:
        wanted = set(keys)
        column = self.data.keys[node]
        j = self._node_index(node)
        for i, key in enumerate(column):
            if key in wanted:
                self.available[i, j] = False
        self.report.withdrawn_rows += len(wanted)
        self.report.events.append(f"{node}: {len(wanted)} customers withdrew consent mid-run")

    def _calls(self, plan: RoundPlan, purpose: str, attempt: int) -> dict[str, EmbedCall]:
        names = [self.data.nodes[i] for i in plan.participants()]
        round_id = masking.derive_round_id(
            self.run_id.encode(), plan.round_no * 2 + (purpose == SCORE_PURPOSE), attempt, names
        )
        positions = {self.data.nodes[i]: plan.positions(i) for i in plan.participants()}
        calls: dict[str, EmbedCall] = {}
        for node, pos in positions.items():
            keys = [k for k in (self.data.keys[node][r] for r in plan.rows[pos]) if k is not None]
            calls[node] = EmbedCall(round_id, purpose, positions, plan.n_rows, node, keys)
        return calls

    def _sum(self, plan: RoundPlan, purpose: str) -> tuple[RoundPlan, FloatArray]:
        """Ask, redo without failed nodes or withdrawn rows, and decode only the sum."""
        for attempt in range(MAX_ATTEMPTS):
            if not plan.participants():
                raise TooFewSources("no node is left to contribute to this round")
            calls = self._calls(plan, purpose, attempt)
            answers = self.link.embed(self.run_id, calls)
            failed = [n for n, a in answers.items() if isinstance(a, NodeFailed)]
            withdrawn = {n: a.row_keys for n, a in answers.items() if isinstance(a, Withdrawal)}
            if not failed and not withdrawn:
                masked = [a for a in answers.values() if isinstance(a, masking.MaskedEmbedding)]
                self.report.bytes_up += sum(m.values.nbytes for m in masked)
                total = masking.aggregate(
                    masked, list(calls), expected_round_id=next(iter(calls.values())).mask_round_id
                )
                return plan, total
            self.report.redone_rounds += 1
            for node in failed:
                self._drop(node, str(answers[node]))
            for node, keys in withdrawn.items():
                self._withdraw(node, keys)
            plan = self._replan(plan)
        raise NodeFailed(f"round {plan.round_no} failed {MAX_ATTEMPTS} times; giving up")

    def _replan(self, plan: RoundPlan) -> RoundPlan:
        sources = plan.sources & self.available[plan.rows]
        keep = sources.sum(axis=1) >= self.config.min_contributors
        return RoundPlan(plan.round_no, plan.rows[keep], sources[keep])

    def run(self) -> TrainedModel:
        started = time.perf_counter()
        seeds = {n: party_seed(self.seed, i) for i, n in enumerate(self.data.nodes)}
        entered = self.link.start(
            self.live, self.run_id, self.data.alignment_run, self.config, seeds
        )
        for node, keys in entered.items():
            if isinstance(keys, NodeFailed):
                self._drop(node, str(keys))
                continue
            have = set(keys)
            j = self._node_index(node)
            self.available[:, j] = [k is not None and k in have for k in self.data.keys[node]]
        self.progress("start", 0, self.config.rounds, {})
        train_rows = np.setdiff1d(np.arange(self.data.labels.size), self.data.held_out)
        planner = RoundPlanner(self.available, train_rows, self.config, seed=self.seed)
        self.report.excluded_rows = planner.excluded
        top = TopTrainer(
            len(self.data.nodes), self.config, seed=party_seed(self.seed, len(self.data.nodes))
        )
        for r in range(self.config.rounds):
            plan = self._replan(planner.plan(r))
            plan, total = self._sum(plan, TRAIN_PURPOSE)
            grad = top.step(total, self.data.labels[plan.rows], plan.sources, r)
            calls = {}
            for i in plan.participants():
                node = self.data.nodes[i]
                pos = plan.positions(i)
                calls[node] = (
                    [self.data.keys[node][x] for x in plan.rows[pos]],
                    grad[pos].astype(np.float32),
                )
                self.report.bytes_down += calls[node][1].nbytes
            for node, result in self.link.backprop(self.run_id, r, calls).items():
                if isinstance(result, NodeFailed):
                    self._drop(node, str(result))
            self.report.rounds += 1
            self.progress("round", r + 1, self.config.rounds, {})
        evaluated = np.concatenate([self.data.validation, self.data.test])
        outputs, scored = self.score(top, evaluated)
        is_val = np.arange(evaluated.size) < self.data.validation.size
        report_rows = ~is_val if self.data.test.size else is_val
        calibrator: Calibrator | SpendScale
        if self.config.head == "ziln":
            calibrator, metrics = _ltv_evaluation(
                outputs, self.data.labels[evaluated], is_val & scored, report_rows & scored
            )
        else:
            calibrator, metrics = _trust_evaluation(
                outputs, self.data.labels[evaluated], is_val & scored, report_rows & scored
            )
        metrics["scored_fraction"] = float(scored[report_rows].mean()) if report_rows.any() else 0.0
        model_id = f"{model_kind(self.config)}-{self.run_id[:12]}"
        for node, result in self.link.finish(self.live, self.run_id, model_id).items():
            if isinstance(result, NodeFailed):
                self._drop(node, str(result))
        self.report.seconds = time.perf_counter() - started
        self.progress("done", self.config.rounds, self.config.rounds, metrics)
        return TrainedModel(
            model_id,
            self.config,
            list(self.data.nodes),
            top,
            calibrator,
            metrics,
            self.report,
            evaluated,
            outputs,
        )

    def score(self, top: TopTrainer, rows: IntArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """The head's output for ``rows`` through one forward-only masked exchange: a logit
        per row (trust) or ``rows × 3`` ZILN numbers (ltv); NaN where fewer than k nodes."""
        plan, _ = plan_scoring(
            self.available, rows, round_no=self.config.rounds, k=self.config.min_contributors
        )
        width = HEAD_OUTPUTS[self.config.head]
        out = np.full((len(rows), width), np.nan)
        if plan.n_rows > 0:
            plan, total = self._sum(plan, SCORE_PURPOSE)
            got = np.asarray(top.logits(total, plan.sources), dtype=np.float64).reshape(-1, width)
            position = {int(r): i for i, r in enumerate(plan.rows)}
            for i, r in enumerate(rows):
                if int(r) in position:
                    out[i] = got[position[int(r)]]
        scored = ~np.isnan(out).any(axis=1)
        return (out[:, 0] if width == 1 else out), scored


def _trust_evaluation(
    logits: FloatArray,
    labels: FloatArray,
    fit: npt.NDArray[np.bool_],
    report: npt.NDArray[np.bool_],
) -> tuple[Calibrator, dict[str, float]]:
    """Temperature scaling on the validation rows; AUC and ECE on the reported rows."""
    calibrator = fit_calibrator(logits[fit], labels[fit], "temperature")
    p = calibrator.probabilities(logits[report])
    y = labels[report]
    return calibrator, {"auc": auc(y, p), "ece": expected_calibration_error(y, p)}


def _ltv_evaluation(
    outputs: FloatArray,
    spend: FloatArray,
    fit: npt.NDArray[np.bool_],
    report: npt.NDArray[np.bool_],
) -> tuple[SpendScale, dict[str, float]]:
    """A spend scale on the validation rows; the bench's four numbers and the 80 % interval's
    coverage on the reported rows."""
    scale = fit_spend_scale(ziln.params_from_output_array(outputs[fit]).expected(), spend[fit])
    params = scale.apply(ziln.params_from_output_array(outputs[report]))
    actual = spend[report]
    metrics: dict[str, float] = {}
    for name, measure in LTV_MEASURES.items():
        try:  # a small held-out cohort may leave one undefined (a decile that spent nothing)
            with np.errstate(all="ignore"):
                value = float(measure(params.expected(), actual))
        except (InvalidInput, ValueError, ZeroDivisionError):
            continue
        if np.isfinite(value):
            metrics[name] = value
    low, high = params.interval(0.8)
    metrics["interval_coverage"] = (
        float(((actual >= low) & (actual <= high)).mean()) if actual.size else 0.0
    )
    return scale, {k: float(v) for k, v in metrics.items()}


__all__ = [
    "EmbedCall",
    "HeadCalibrated",
    "NodeFailed",
    "NodeLink",
    "RunReport",
    "TrainedModel",
    "TrainingRun",
    "TrainingSet",
    "Withdrawal",
    "load_training_set",
    "model_kind",
]
