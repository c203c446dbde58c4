"""The node's grouped ledger appends: concurrent callers share requests, each gets its own
indexes (or its own refusal), and nobody returns before its entries were delivered."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from accord.errors import InvalidInput, Unavailable
from accord.ledger_writer import AppendGroup


class FakeLedger:
    """Assigns indexes in arrival order; the first delivery waits until released, so that
    the callers arriving meanwhile queue behind it."""

    def __init__(self, refuse: bytes | None = None, fail: bool = False) -> None:
        self.log: list[bytes] = []
        self.requests: list[list[bytes]] = []
        self.release = threading.Event()
        self.first_in = threading.Event()
        self.refuse, self.fail = refuse, fail
        self.lock = threading.Lock()

    def deliver(self, entries: list[bytes]) -> list[int]:
        with self.lock:
            first = not self.requests
            self.requests.append(list(entries))
        if first:
            self.first_in.set()
            self.release.wait(5)
        if self.refuse is not None and self.refuse in entries:
            raise InvalidInput("entry refused")
        if self.fail:
            raise Unavailable("ledger down")
        with self.lock:
            start = len(self.log)
            self.log.extend(entries)
            return list(range(start, start + len(entries)))


def _run_callers(ledger: FakeLedger, callers: list[list[bytes]]) -> list[object]:
    group = AppendGroup(ledger.deliver, max_in_flight=1)

    def call(entries: list[bytes]) -> object:
        try:
            return group.append(entries)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(callers)) as pool:
        head = pool.submit(call, callers[0])
        assert ledger.first_in.wait(5)
        rest = [pool.submit(call, c) for c in callers[1:]]
        threading.Event().wait(0.2)  # let the others queue behind the first delivery
        ledger.release.set()
        return [head.result(10)] + [r.result(10) for r in rest]


def test_concurrent_callers_share_requests_and_each_gets_its_own_indexes() -> None:
    ledger = FakeLedger()
    callers = [[f"c{i}-e{j}".encode() for j in range(i % 3 + 1)] for i in range(8)]
    results = _run_callers(ledger, callers)
    assert len(ledger.requests) < len(callers)  # grouped: fewer requests than callers
    for entries, indexes in zip(callers, results, strict=True):
        assert isinstance(indexes, list)
        assert [ledger.log[i] for i in indexes] == entries  # in order, each its own


def test_a_refused_entry_fails_only_its_caller() -> None:
    ledger = FakeLedger(refuse=b"bad")
    callers = [[b"first"], [b"ok-1"], [b"bad"], [b"ok-2", b"ok-3"]]
    results = _run_callers(ledger, callers)
    assert isinstance(results[2], InvalidInput)
    for i in (0, 1, 3):
        indexes = results[i]
        assert isinstance(indexes, list)
        assert [ledger.log[j] for j in indexes] == callers[i]
    assert b"bad" not in ledger.log


def test_an_unreachable_ledger_fails_every_waiting_caller() -> None:
    ledger = FakeLedger(fail=True)
    results = _run_callers(ledger, [[b"a"], [b"b"], [b"c"]])
    assert all(isinstance(r, Unavailable) for r in results)
    assert ledger.log == []


def test_nothing_to_append_sends_nothing() -> None:
    ledger = FakeLedger()
    assert AppendGroup(ledger.deliver).append([]) == []
    assert ledger.requests == []


@pytest.mark.parametrize("in_flight", [1, 2])
def test_many_callers_all_settle(in_flight: int) -> None:
    ledger = FakeLedger()
    ledger.release.set()
    group = AppendGroup(ledger.deliver, max_in_flight=in_flight)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: group.append([str(i).encode()]), range(200)))
    assert sorted(ledger.log[r[0]] for r in results) == sorted(str(i).encode() for i in range(200))
