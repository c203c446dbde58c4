"""The coordinator's own Prometheus metrics: ledger, alignment, training and scoring.

Counters of what this process does (alignment runs, scoring answers) count from its start, as
Prometheus counters do. Training runs in Flower's processes (the ServerApp on the Deployment
Engine, or `accord train` on the simulation runtime), never in this one; what reaches this
process is each finished model in its database, so the training figures are read from there
at every scrape and cover every runtime. Labels carry fixed names and party (channel) names
only, never a customer's reference or key.
"""

from __future__ import annotations

import json
from collections import Counter as Tally
from collections.abc import Iterator

import structlog
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from accord.clock import Clock, system_clock
from accord.coordinator.alignment import RunResult
from accord.coordinator.ledger.log import Ledger
from accord.coordinator.scoring import Answer

log = structlog.get_logger(__name__)

SCORED = "scored"  # every source of the model contributed
DEGRADED = "degraded"  # scored, from fewer sources than the model has (some were left out)
NOT_SCORED = "not_scored"  # Score answered without a score (too few sources, a source failed)
REFUSED = "refused"  # Begin refused: not aligned, revoked, or held by too few sources
SCORING_OUTCOMES = (SCORED, DEGRADED, NOT_SCORED, REFUSED)
ALIGNMENT_RESULTS = ("completed", "failed")


def outcome_of(answer: Answer) -> str:
    """Which outcome a Score answer counts as (``confidence`` is the share of sources used)."""
    if not answer.scored:
        return NOT_SCORED
    return SCORED if answer.confidence >= 1.0 else DEGRADED


class LedgerCollector(Collector):
    """The ledger's size, its newest checkpoint's size, and how old that checkpoint is.

    A checkpoint is published only when the log grew, so its age is the time since the last
    append was made visible; entries above the checkpoint's size for long means publication
    is stuck.
    """

    def __init__(self, ledger: Ledger, clock: Clock = system_clock) -> None:
        self._ledger = ledger
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "accord_ledger_entries",
            "Entries durably appended to the consent ledger.",
            value=self._ledger.sequencer.head().size,
        )
        try:
            checkpoint = self._ledger.checkpoint()
        except RuntimeError:  # not started yet: nothing published
            return
        yield GaugeMetricFamily(
            "accord_ledger_checkpoint_entries",
            "Entries covered by the newest signed checkpoint.",
            value=checkpoint.size,
        )
        yield GaugeMetricFamily(
            "accord_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint was published.",
            value=max(0.0, self._clock() - checkpoint.published_at),
        )


class TrainingCollector(Collector):
    """Finished trainings and their rounds, by model kind, from the models stored so far."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[CounterMetricFamily]:
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(text("SELECT kind, report FROM model_version")).all()
        except SQLAlchemyError as exc:  # a scrape must not fail with the database
            log.warning("training metrics unavailable", error=str(exc))
            return
        models: Tally[str] = Tally()
        rounds: Tally[str] = Tally()
        redone: Tally[str] = Tally()
        for kind, report in rows:
            body = json.loads(report)
            models[kind] += 1
            rounds[kind] += int(body.get("rounds", 0))
            redone[kind] += int(body.get("redone_rounds", 0))
        for name, doc, tally in (
            ("accord_trainings", "Training runs that finished and published a model.", models),
            (
                "accord_training_rounds",
                "Rounds (exchanges with the nodes) of the training runs that published a model.",
                rounds,
            ),
            (
                "accord_training_redone_rounds",
                "Rounds redone because a node failed mid-round, in published training runs.",
                redone,
            ),
        ):
            family = CounterMetricFamily(name, doc, labels=("kind",))
            for kind in ("trust", "ltv"):
                family.add_metric((kind,), tally[kind])
            yield family


class CoordinatorMetrics:
    """What the coordinator's servicers report as they answer, plus its collectors."""

    def __init__(
        self,
        registry: CollectorRegistry,
        engine: Engine,
        ledger: Ledger,
        clock: Clock = system_clock,
    ) -> None:
        self.scoring_answers = Counter(
            "accord_scoring_answers",
            "Answers to touchpoints' scoring requests, by outcome.",
            ("outcome",),
            registry=registry,
        )
        self.alignment_runs = Counter(
            "accord_alignment_runs",
            "Alignment runs this coordinator orchestrated, by result.",
            ("result",),
            registry=registry,
        )
        self.alignment_matched = Counter(
            "accord_alignment_matched",
            "Customers a feature channel matched with the brand's, summed over completed runs.",
            ("channel",),
            registry=registry,
        )
        for outcome in SCORING_OUTCOMES:  # every series exists from the start, at zero
            self.scoring_answers.labels(outcome)
        for result in ALIGNMENT_RESULTS:
            self.alignment_runs.labels(result)
        registry.register(LedgerCollector(ledger, clock))
        registry.register(TrainingCollector(engine))

    def answered(self, outcome: str) -> None:
        self.scoring_answers.labels(outcome).inc()

    def aligned(self, result: RunResult) -> None:
        self.alignment_runs.labels("completed").inc()
        for channel, (_candidates, matched) in result.channels.items():
            self.alignment_matched.labels(channel).inc(matched)

    def alignment_failed(self) -> None:
        self.alignment_runs.labels("failed").inc()
