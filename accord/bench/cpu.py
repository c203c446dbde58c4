"""CPU time of processes across a timed phase: this process and others by pid (Linux /proc)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` (None: this process, all its threads)."""
    if pid is None or pid == os.getpid():
        times = os.times()
        return times.user + times.system
    # /proc/<pid>/stat: "pid (comm) state ...": utime and stime are fields 14 and 15, counted
    # after the closing parenthesis so that a command name with spaces cannot shift them.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


class CpuMeter:
    """CPU seconds each named process spent between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: Mapping[str, int | None]) -> None:
        self._pids = dict(pids)
        self._started: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def start(self) -> None:
        self._started = {name: cpu_seconds(pid) for name, pid in self._pids.items()}

    def stop(self) -> None:
        self.spent = {
            name: cpu_seconds(pid) - self._started[name] for name, pid in self._pids.items()
        }

    def ms_per_request(self, requests: int) -> dict[str, float]:
        """Each process's CPU milliseconds per request, and their total."""
        per = {name: round(1000 * s / max(requests, 1), 2) for name, s in self.spent.items()}
        per["total"] = round(sum(1000 * s for s in self.spent.values()) / max(requests, 1), 2)
        return per
