"""A node's own Prometheus metrics, read from its store at each scrape.

Consent records by state, the customers held, the training rounds this node answered, and the
ledger alarms it holds (a coordinator's ledger that went back or forked).
Training runs in the node's Flower ClientApp, a process of its own; each round it answers is
recorded in this node's store (``answered_round``), so the count covers every runtime. Only
counts leave the store, labelled with fixed state names.
"""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from accord.clock import Clock, system_clock
from accord.node.store import customer_count

log = structlog.get_logger(__name__)

# ``consent_record.status`` values, plus ``expired``: granted, but past its expiry date.
CONSENT_STATES = ("pending", "granted", "expired", "revoked")

_CONSENTS = text(
    "SELECT CASE WHEN status = 'granted' AND expires_at <= :now THEN 'expired' ELSE status END, "
    "COUNT(*) FROM consent_record GROUP BY 1"
)
_ANSWERED = text("SELECT COUNT(*) FROM answered_round")
_ALARMS = text("SELECT COUNT(*) FROM ledger_alarm")


class NodeCollector(Collector):
    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self._engine = engine
        self._clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            with self._engine.connect() as conn:
                states = {
                    str(s): int(n)
                    for s, n in conn.execute(_CONSENTS, {"now": int(self._clock())}).all()
                }
                answered = int(conn.execute(_ANSWERED).scalar() or 0)
                alarms = int(conn.execute(_ALARMS).scalar() or 0)
            # the count goes through the store: only the gate reads customer rows
            customers = customer_count(self._engine)
        except SQLAlchemyError as exc:  # a scrape must not fail with the database
            log.warning("node metrics unavailable", error=str(exc))
            return
        consents = GaugeMetricFamily(
            "accord_consents", "This node's consent records, by state.", labels=("state",)
        )
        for state in CONSENT_STATES:
            consents.add_metric((state,), states.get(state, 0))
        yield consents
        yield GaugeMetricFamily(
            "accord_node_customers", "Customers in this node's store.", value=customers
        )
        yield CounterMetricFamily(
            "accord_training_rounds_answered",
            "Training exchanges (round ids) this node answered, in any run.",
            value=answered,
        )
        yield GaugeMetricFamily(
            "accord_ledger_alarms",
            "Rollbacks or forks of the coordinator's ledger this node detected and keeps as "
            "evidence (accord node status); 0 while every checkpoint extends the last.",
            value=alarms,
        )
