"""Who may write which ledger event: a node cannot forge the network's records (a policy or
model version, an alignment or training run) even in its own name, and the coordinator cannot
write consents or data uses, which belong to the node holding the data. Refused appends
change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest

from accord.consent.events import ConsentGranted, DataUse, Record, Use, encode
from accord.coordinator.ledger.log import Ledger
from accord.crypto.keys import NoteSigner
from accord.errors import NotPermitted
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

SIGNER = NoteSigner.generate("accord.test/coordinator")
T = 1_700_000_000


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    engine = make_engine(sqlite_url(tmp_path / "coordinator.db"))
    upgrade(engine, "coordinator")
    opened = Ledger(engine, SIGNER, checkpoint_interval_s=0.05)
    opened.start()
    yield opened
    opened.stop()


def grant(node: str, i: int = 0) -> bytes:
    return encode(
        ConsentGranted(
            node,
            sha256(f"subject-{i}".encode()).digest(),
            sha256(f"consent-{node}-{i}".encode()).digest(),
            ("model-training",),
            T + 10**6,
            T,
        )
    )


def size(ledger: Ledger) -> int:
    return ledger.sequencer.head().size


@pytest.mark.parametrize(
    "kind", ["policy.version", "model.version", "alignment.run", "training.run"]
)
def test_a_node_cannot_write_the_networks_records(ledger: Ledger, kind: str) -> None:
    before = size(ledger)
    forged = encode(Record("pay", kind, T, {"policy": "touchpoint", "version": 99}))
    with pytest.raises(NotPermitted, match="coordinator's to write"):
        ledger.append([forged], appended_by="pay")
    # nor hidden behind a genuine grant in the same request
    with pytest.raises(NotPermitted):
        ledger.append([grant("pay"), forged], appended_by="pay")
    assert size(ledger) == before


def test_the_coordinator_cannot_write_consents_or_uses(ledger: Ledger) -> None:
    before = size(ledger)
    with pytest.raises(NotPermitted, match="node that holds the data"):
        ledger.append([grant("coordinator")], appended_by="coordinator")
    use = DataUse("coordinator", "model-training", "run-1", T, (Use(bytes(32), bytes(32), 0),))
    with pytest.raises(NotPermitted):
        ledger.append([encode(use)], appended_by="coordinator")
    assert size(ledger) == before


def test_each_writes_what_is_its_own(ledger: Ledger) -> None:
    before = size(ledger)
    ledger.append([grant("pay")], appended_by="pay")
    ledger.append([encode(Record("coordinator", "policy.version", T, {"v": 1}))], "coordinator")
    assert size(ledger) == before + 2
