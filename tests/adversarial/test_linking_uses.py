"""Linking data uses from the ledger (P6, issue 16 item 3): a curious marketer holding its score
receipts, and a curious node, each reading every ledger entry.

Every use here is written by the real consent gate of real node stores (``gate.require``, what
a node's scoring does for one request) and appended to the real ledger; only the coordinator's
fan-out is left out (it adds nothing to the entries). Before issue 16 a use named the
customer's subject and consent commitments, the cited grant and the request id in clear: both
attacks below linked perfectly (AUC 1.0). Now those are sealed to the auditor and each use
carries a fresh tag only the customer's opening recognises; the auditor's violations check and
the customer's trail still work (last tests).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from inprocess import InProcessLedger, Network, build
from scipy.sparse import csr_matrix
from sklearn.metrics import roc_auc_score

from accord.auditing.entries import LedgerEvent, auditor_opener, decode_entry
from accord.auditing.trail import subject_trail
from accord.auditing.violations import find_violations
from accord.consent.events import Use, seal_data_use
from accord.coordinator.ledger.log import MAX_ENTRIES_PER_READ
from accord.crypto.commitment import Opening
from accord.data.channel_file import ChannelTable
from accord.errors import NotPermitted
from accord.pki_layout import load_audit_recipient
from accord.rpc.tls import PartyCredentials

PURPOSE = "risk-scoring"
CHANNELS = ("pay", "shop", "social")
EVERYWHERE = range(0, 40)  # held by all three channels: the marketer's population
SOMETIMES = range(40, 160)  # held by pay, and by shop and social at random: the node's
PAIRS = 400  # pairs of requests made, half of one customer, half of two; every pair is scored
BOUND = 0.55
CHUNK = 16  # the marketer also compares every 16-byte window of every binary field


def _holders(person: int) -> tuple[str, ...]:
    if person in EVERYWHERE:
        return CHANNELS
    bits = random.Random(person).getrandbits(2)
    return ("pay",) + (("shop",) if bits & 1 else ()) + (("social",) if bits & 2 else ())


def _table(channel: str) -> ChannelTable:
    people = [p for p in (*EVERYWHERE, *SOMETIMES) if channel in _holders(p)]
    return ChannelTable(
        channel,
        [f"{channel}-{p}" for p in people],
        [f"+8869{p:08d}" for p in people],
        [f"p{p}@example.com" for p in people],
        {"x": "float"},
        np.array([[p % 3] for p in people], dtype=float),
    )


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory, pki_dir: Path) -> Iterator[Network]:
    tables = {c: _table(c) for c in CHANNELS}
    consents = {c: dict.fromkeys(t.refs, (PURPOSE,)) for c, t in tables.items()}
    net = build(tmp_path_factory.mktemp("linking"), pki_dir, tables, consents)
    try:
        yield net
    finally:
        net.stop()


@dataclass(frozen=True)
class Request:
    person: int
    request_id: str
    receipts: dict[str, int]  # node -> ledger index of its use: what the answer's receipt says


def _score(net: Network, person: int) -> Request:
    """One scoring request's uses, as each holding node's scoring logs them."""
    request_id = secrets.token_hex(12)
    receipts = {
        c: net.nodes[c].gate.require(PURPOSE, request_id, f"{c}-{person}").use_indexes[0]
        for c in _holders(person)
    }
    return Request(person, request_id, receipts)


def _ledger(net: Network) -> dict[int, bytes]:
    size = net.ledger.sequencer.head().size
    out: dict[int, bytes] = {}
    for start in range(0, size, MAX_ENTRIES_PER_READ):
        for e in net.ledger.entries(start, min(MAX_ENTRIES_PER_READ, size - start)):
            out[e.index] = e.data
    return out


def _values(data: bytes, skip: frozenset[str] = frozenset()) -> set[str]:
    """Every value an entry shows, wherever it sits, and every 16-byte window of every binary
    value: what a reader can compare across entries."""
    found: set[str] = set()

    def walk(value: object, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key not in skip:
            found.add(repr(value))
            if isinstance(value, str) and len(value) >= 24:
                try:
                    raw = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    return
                found.update(raw[i : i + CHUNK].hex() for i in range(len(raw) - CHUNK + 1))

    walk(json.loads(data), "")
    return found


def _auc(labels: np.ndarray | list[int], scores: np.ndarray | list[float]) -> float:
    return float(roc_auc_score(labels, scores))


def _shared_counts(sets: list[set[str]]) -> np.ndarray:
    """How many values each two of ``sets`` share, for every two at once (a sparse product)."""
    column: dict[str, int] = {}
    rows, cols = [], []
    for n, values in enumerate(sets):
        for v in values:
            rows.append(n)
            cols.append(column.setdefault(v, len(column)))
    member = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(sets), max(len(column), 1)))
    return np.asarray((member @ member.T).todense())


def test_a_marketer_holding_receipts_and_the_ledger_cannot_link_two_requests(
    network: Network,
) -> None:
    rng = random.Random(16)
    people = list(EVERYWHERE)
    pairs = [(p, p, 1) for p in rng.choices(people, k=PAIRS // 2)] + [
        (*rng.sample(people, 2), 0) for _ in range(PAIRS // 2)
    ]
    # Every pair's second request comes PAIRS requests after its first, in a random order of
    # pairs: when the marketer asked is its own knowledge, so the schedule is the same for both
    # kinds of pair and what remains to link them is what the ledger adds.
    order = list(range(PAIRS))
    rng.shuffle(order)
    jobs = [(n, side, pairs[n][side]) for side in (0, 1) for n in order]
    made: dict[tuple[int, int], Request] = {}
    started = time.perf_counter()
    for n, side, person in jobs:
        made[(n, side)] = _score(network, person)
    took = time.perf_counter() - started
    ledger = _ledger(network)
    # what links a use to a grant: a commitment or index the grant shows, found in the use
    grants = {
        i: _values(d, frozenset({"v", "type", "node", "purposes", "expires", "at"}))
        for i, d in ledger.items()
        if b'"consent.granted"' in d
    }

    def seen(r: Request) -> set[str]:
        return set().union(*(_values(ledger[i]) for i in r.receipts.values()))

    def linked_grants(r: Request, values: set[str]) -> set[int]:
        return {i for i, g in grants.items() if g & values or repr(i) in values}

    # Every pair of the 800 requests is scored, not only the 400 made as pairs: under chance an
    # AUC over 200 + 200 pairs spreads by about 0.03 (a bound of 0.55 would fail one run in
    # twenty per strategy), over every pair by about 0.004.
    requests = list(made.values())
    shown = [seen(r) for r in requests]
    cited = [linked_grants(r, v) for r, v in zip(requests, shown, strict=True)]
    equal = _shared_counts(shown)
    via_grants = _shared_counts([{repr(i) for i in g} for g in cited])
    first = np.array([min(r.receipts.values()) for r in requests], dtype=float)
    size = np.array([sum(len(ledger[i]) for i in r.receipts.values()) for r in requests], float)
    person = np.array([r.person for r in requests])
    upper = np.triu_indices(len(requests), k=1)
    labels = (person[:, None] == person[None, :])[upper].astype(int)
    # fixed in advance: closer in the log, or more alike in size, means the same customer
    distance = -np.abs(first[:, None] - first[None, :])[upper]
    length = -np.abs(size[:, None] - size[None, :])[upper]
    strategies = {
        "equal values and windows + shared grants": _auc(labels, (equal + via_grants)[upper]),
        "equal values and windows": _auc(labels, equal[upper]),
        "shared grants": _auc(labels, via_grants[upper]),
        "closeness in the log": _auc(labels, distance),
        "alike in size": _auc(labels, length),
    }
    print(
        f"\n{2 * PAIRS} requests in {took:.1f}s; {labels.sum()} same-customer pairs of "
        f"{labels.size}; marketer AUC by strategy:"
    )
    for name, auc in strategies.items():
        print(f"  {name}: {auc:.3f}")
    assert max(strategies.values()) <= BOUND, strategies


def test_a_node_reading_the_ledger_cannot_tell_which_other_channels_hold_its_customer(
    network: Network,
) -> None:
    requests = [_score(network, p) for p in SOMETIMES]
    ledger = _ledger(network)
    book = network.nodes["pay"].book
    by_node: dict[str, list[tuple[int, set[str]]]] = {c: [] for c in CHANNELS}
    for i, data in ledger.items():
        if b'"data.use"' in data:
            node = json.loads(data)["node"]
            by_node[node].append((i, _values(data, frozenset({"at"}))))
    labels, equal, near = [], [], []
    for r in requests:
        ref = f"pay-{r.person}"
        mine = r.receipts["pay"]
        # all pay knows of this customer and request: its own entry, the request id, the
        # customer's commitments and salt
        known = _values(ledger[mine], frozenset({"at"})) | {repr(r.request_id)}
        for record in book.records(ref):
            for field_value in (record.subject_commitment, record.consent_commitment):
                known.add(repr(base64.b64encode(field_value).decode()))
        salt = book.salt(ref)
        assert salt is not None
        known.add(salt.hex())
        for other in ("shop", "social"):
            labels.append(int(other in r.receipts))
            equal.append(max(len(v & known) for _, v in by_node[other]))
            # timing: how close the other channel's nearest use sits to pay's own
            near.append(-min(abs(i - mine) for i, _ in by_node[other]))
    field_auc = _auc(labels, equal)
    timing_auc = _auc(labels, near)
    print(
        f"\nnode pay, {len(labels)} (customer, channel) questions, {sum(labels)} held: "
        f"AUC by equal values {field_auc:.3f}; by position in the log {timing_auc:.3f} "
        "(open: uses of one request are appended together)"
    )
    assert field_auc <= BOUND


def _events(net: Network) -> list[LedgerEvent]:
    return [decode_entry(i, d) for i, d in sorted(_ledger(net).items())]


def test_the_auditor_still_finds_a_use_after_a_revocation(network: Network, pki_dir: Path) -> None:
    pay = network.nodes["pay"]
    person = EVERYWHERE[0]
    ref = f"pay-{person}"
    _score(network, person)
    (record,) = pay.book.records(ref)
    permit = pay.gate.permits(PURPOSE, [ref])[ref]
    pay.book.revoke([record.record_id])
    with pytest.raises(NotPermitted):
        pay.gate.require(PURPOSE, "after-revocation", ref)
    # a node that ignores the revocation and logs a use anyway, sealed like any other
    auditor_key = load_audit_recipient(pki_dir / "pay", now=dt.datetime.now(dt.UTC))
    rogue = seal_data_use(
        "pay",
        PURPOSE,
        "after-revocation",
        int(time.time()),
        [(Use(permit.subject, permit.consent, permit.grant_index), permit.tag_key)],
        auditor_key,
    )
    (index,) = InProcessLedger(network.ledger, "pay").append([rogue])
    events = _events(network)
    opener = auditor_opener(PartyCredentials.load(pki_dir / "auditor").key_pem)
    report = find_violations(events, opener)
    assert report.violating_entries() == [index]
    assert "revoked" in report.violations[0].problem
    assert report.uses_checked > 1
    # without the auditor's key, or with another party's, no use can be shown covered
    for reader in (None, auditor_opener(PartyCredentials.load(pki_dir / "marketer").key_pem)):
        blind = find_violations(events, reader)
        assert len(blind.violations) == blind.uses_checked


def test_a_customers_trail_lists_their_uses_and_only_theirs(
    network: Network, pki_dir: Path
) -> None:
    pay = network.nodes["pay"]
    person, other = EVERYWHERE[5], EVERYWHERE[6]
    made = [_score(network, p) for p in (person, person, other, person)]
    ref = f"pay-{person}"
    salt = pay.book.salt(ref)
    assert salt is not None
    opening = Opening("pay", ref, salt)
    events = _events(network)
    opener = auditor_opener(PartyCredentials.load(pki_dir / "auditor").key_pem)
    trail = subject_trail(events, opening.subject(), opening.use_tag_key(), opener)
    theirs = {u.ledger_index for u in pay.book.uses(ref)}  # what pay logged for this customer
    assert {r.receipts["pay"] for r in made if r.person == person} <= theirs
    uses = [e for e in trail if e.event == "data use"]
    assert {e.index for e in uses} == theirs
    assert all(e.detail.startswith("session ") for e in uses)
    assert trail[0].event == "consent granted"
    # the customer alone (no auditor key) still finds the same uses
    alone = subject_trail(events, opening.subject(), opening.use_tag_key())
    assert {e.index for e in alone if e.event == "data use"} == theirs
    # another customer's opening finds none of them
    other_salt = pay.book.salt(f"pay-{other}")
    assert other_salt is not None
    stranger = Opening("pay", f"pay-{other}", other_salt)
    found = subject_trail(events, stranger.subject(), stranger.use_tag_key(), opener)
    assert not theirs & {e.index for e in found if e.event == "data use"}
