"""The soak's faults: a seeded plan of SIGKILLs (and one PostgreSQL restart), the time each
party takes to be useful again, and the memory of each process.

Recovery is timed from the kill to the end of the first successful operation that touched the
party and started after the kill: a scored answer (the coordinator, the label node and every
source it names) or a consent receipt (the node, and the coordinator when the receipt carries
a ledger index). After PostgreSQL's restart, only an acknowledged append counts (a write
the coordinator made durable in it). An operation already in flight at the fault does not
count.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

COORDINATOR = "coordinator"
POSTGRES = "postgres"


@dataclass(frozen=True)
class PlannedFault:
    at_s: float  # seconds after the load started
    target: str  # a node's channel, "coordinator" or "postgres"


def fault_plan(
    rng: random.Random, nodes: list[str], seconds: float, every_s: float, postgres: bool
) -> list[PlannedFault]:
    """Faults ``every_s`` apart (jittered by ±25 %), none in the first or last ``every_s / 2``.

    The coordinator alternates with the nodes, which come in a shuffled order, so a short run
    kills the coordinator and a node first and a longer one kills every party; with
    PostgreSQL behind the coordinator, one fault midway restarts it instead.
    """
    count = max(1, int((seconds - every_s / 2) // every_s))
    order: list[str] = []
    while len(order) < count:
        shuffled = list(nodes)
        rng.shuffle(shuffled)
        for node in shuffled:
            order += [COORDINATOR, node]
    order = order[:count]
    if postgres:
        order[len(order) // 2] = POSTGRES
    return [
        PlannedFault(round(every_s * (i + 0.5) + rng.uniform(-0.25, 0.25) * every_s, 2), target)
        for i, target in enumerate(order)
    ]


@dataclass
class FaultRecord:
    target: str
    at_s: float
    kind: str  # "sigkill" or "restart"
    rss_before_mb: float | None = None
    ready_s: float | None = None  # from the kill until the new process served (or PG was up)
    recover_s: float | None = None  # until the first successful operation touching the party

    def figures(self) -> dict[str, object]:
        return {
            "target": self.target,
            "kind": self.kind,
            "at_s": self.at_s,
            "ready_s": self.ready_s,
            "recover_s": self.recover_s,
            "rss_before_mb": self.rss_before_mb,
        }


@dataclass
class RecoveryWatch:
    """Workers report each success with the parties it touched; faults wait on it."""

    _open: dict[str, float] = field(default_factory=dict)  # party -> kill time (monotonic)
    _done: dict[str, float] = field(default_factory=dict)  # party -> seconds to recover
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self, party: str, killed_at: float) -> None:
        with self._cond:
            self._open[party] = killed_at
            self._done.pop(party, None)

    def touch(self, parties: set[str], started: float, finished: float) -> None:
        with self._cond:
            for party in parties & set(self._open):
                if started > self._open[party]:
                    self._done[party] = finished - self._open.pop(party)
                    self._cond.notify_all()

    def wait(self, party: str, timeout_s: float) -> float | None:
        """Seconds from the kill to recovery, or None if it did not recover in time."""
        with self._cond:
            self._cond.wait_for(lambda: party in self._done, timeout=timeout_s)
            self._open.pop(party, None)
            return self._done.pop(party, None)


def rss_mb(pid: int | None = None) -> float | None:
    """Resident memory of a process (this one when ``pid`` is None), from /proc."""
    path = Path("/proc") / ("self" if pid is None else str(pid)) / "status"
    try:
        for line in path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def since(start: float) -> float:
    return round(time.monotonic() - start, 2)
