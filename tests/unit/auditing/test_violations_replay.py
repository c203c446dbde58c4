"""accord.auditing.violations: the replay catches every kind of use without a valid consent."""

from __future__ import annotations

from hashlib import sha256

import pytest

from accord.auditing.entries import LedgerEvent, decode_entry
from accord.auditing.violations import find_violations
from accord.consent.events import (
    ConsentGranted,
    ConsentRevoked,
    DataUse,
    Event,
    Record,
    Use,
    encode,
)

T = 1_800_000_000


def h(text: str) -> bytes:
    return sha256(text.encode()).digest()


def grant(
    n: str, node: str = "pay", purposes: tuple[str, ...] = ("model-training",), expires: int = T * 2
) -> ConsentGranted:
    return ConsentGranted(node, h(f"s{n}"), h(f"c{n}"), purposes, expires, T)


def use(
    n: str,
    index: int,
    node: str = "pay",
    purpose: str = "model-training",
    at: int = T + 10,
    subject: str | None = None,
) -> DataUse:
    return DataUse(node, purpose, "run-1", at, (Use(h(f"s{subject or n}"), h(f"c{n}"), index),))


def ledger(*events: Event) -> list[LedgerEvent]:
    return [decode_entry(i, encode(e)) for i, e in enumerate(events)]


def test_clean_ledger_has_no_violations() -> None:
    report = find_violations(
        ledger(
            grant("a"),
            grant("b", purposes=("model-training", "risk-scoring")),
            use("a", 0),
            use("b", 1, purpose="risk-scoring"),
            ConsentRevoked("pay", h("sa"), h("ca"), T + 20, "withdrawn"),  # after the use
            Record("coordinator", "alignment.run", T, {"run": "x"}),
        )
    )
    assert report.clean
    assert (report.uses_checked, report.use_events, report.entries) == (2, 2, 6)
    assert (report.consents_granted, report.consents_revoked) == (2, 1)
    assert report.events_by_type["record:alignment.run"] == 1


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        ((use("x", 0),), "no consent with this commitment"),
        ((use("a", 0), grant("a")), "no consent with this commitment"),  # granted only later
        ((grant("a"), use("a", 0, purpose="marketing")), "covers model-training, not marketing"),
        ((grant("a"), use("a", 7)), "cites a grant at entry 7"),
        ((grant("a"), use("a", 0, node="shop")), "granted at node 'pay'"),
        ((grant("a"), use("a", 0, subject="z")), "different customer"),
        ((grant("a", expires=T + 5), use("a", 0)), "expired at"),
        (
            (grant("a"), ConsentRevoked("pay", h("sa"), h("ca"), T, "erased"), use("a", 0)),
            "revoked at entry 1",
        ),
    ],
    ids=[
        "never-granted",
        "granted-later",
        "purpose",
        "wrong-index",
        "other-node",
        "other-subject",
        "expired",
        "revoked",
    ],
)
def test_each_kind_of_violation_is_found_and_names_the_entry(
    events: tuple[Event, ...], problem: str
) -> None:
    report = find_violations(ledger(*events))
    assert len(report.violations) == 1
    found = report.violations[0]
    assert found.index == (len(events) - 1 if isinstance(events[-1], DataUse) else 0)
    assert problem in found.problem
    assert report.violating_entries() == [found.index]


def test_revocation_by_another_node_or_duplicate_grant_follows_the_status_map() -> None:
    report = find_violations(
        ledger(
            grant("a"),
            ConsentRevoked("shop", h("sa"), h("ca"), T, "withdrawn"),  # not pay's to revoke
            ConsentGranted("pay", h("sa"), h("ca"), ("marketing",), T * 2, T),  # duplicate
            use("a", 0),
            use("a", 2, purpose="marketing"),
        )
    )
    assert [v.index for v in report.violations] == [4]
    assert "cites a grant at entry 2" in report.violations[0].problem
    assert "not marketing" in report.violations[0].problem  # every reason is listed


def test_every_use_of_a_multi_use_event_is_checked() -> None:
    event = DataUse(
        "pay",
        "model-training",
        "run",
        T + 1,
        (Use(h("sa"), h("ca"), 0), Use(h("sb"), h("cb"), 5), Use(h("sq"), h("cq"), 1)),
    )
    report = find_violations(ledger(grant("a"), grant("b"), event))
    assert report.uses_checked == 3
    assert [(v.index, v.use) for v in report.violations] == [(2, 1), (2, 2)]


def test_unreadable_entries_are_reported_not_skipped_silently() -> None:
    items = [decode_entry(0, b"not json"), *ledger(grant("a"))[:1]]
    report = find_violations(items)
    assert report.clean
    assert report.unreadable[0][0] == 0
