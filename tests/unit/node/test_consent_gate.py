"""P3 and P5 at one node, over its real store and a real (in-process) coordinator ledger."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from accord.consent.events import Event, SealedDataUse, decode, encode, open_data_use
from accord.consent.proofs import ConsentNotValid, proof_document, verify_consent_proof
from accord.coordinator.ledger.log import Ledger
from accord.crypto.commitment import Opening, subject_commitment
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteSigner
from accord.crypto.merkle import verify_inclusion
from accord.crypto.note import Checkpoint, sign_checkpoint
from accord.data.channel_file import ChannelTable
from accord.errors import InvalidInput, NotFound, NotPermitted
from accord.node import store
from accord.node.consent import ConsentBook, ConsentGrant, default_terms
from accord.node.gate import ConsentedRows, ConsentGate
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

SIGNER = NoteSigner.generate("accord.test/coordinator")
DAY = 86400
_AUDITOR = ec.generate_private_key(ec.SECP256R1())
AUDITOR_PEM = _AUDITOR.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
AUDITOR = _AUDITOR.public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
)


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class InProcessLedger:
    """The coordinator's real ledger library, called directly as the node's gRPC client would."""

    def __init__(self, ledger: Ledger, node: str) -> None:
        self.ledger, self.node = ledger, node

    def append(self, events: Sequence[Event]) -> list[int]:
        return [
            a.index for a in self.ledger.append([encode(e) for e in events], appended_by=self.node)
        ]


@dataclass
class World:
    ledger: Ledger
    book: ConsentBook
    gate: ConsentGate
    clock: Clock

    def events(self) -> list[Event]:
        size = self.ledger.sequencer.head().size
        return [decode(e.data) for e in self.ledger.store.get_entries(0, size)] if size else []

    def uses(self) -> list[SealedDataUse]:
        return [e for e in self.events() if isinstance(e, SealedDataUse)]


REFS = [f"pay-{i}" for i in range(6)]


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    coord = make_engine(f"sqlite:///{tmp_path / 'coordinator.db'}")
    upgrade(coord, "coordinator")
    ledger = Ledger(coord, SIGNER, clock=clock, checkpoint_interval_s=0.05)
    ledger.start()
    engine = make_engine(db_url)
    upgrade(engine, "node")
    table = ChannelTable(
        "pay",
        REFS,
        [f"+8869000000{i}" for i in range(6)],
        [f"p{i}@example.com" for i in range(6)],
        {"PAY_0": "int"},
        np.arange(6, dtype=float).reshape(6, 1),
    )
    store.import_table(engine, table, "pay", clock=clock)
    writer = InProcessLedger(ledger, "pay")
    yield World(
        ledger,
        ConsentBook(engine, "pay", writer, clock),
        ConsentGate(engine, "pay", writer, clock, auditor=AUDITOR),
        clock,
    )
    ledger.stop()


def grant(world: World, ref: str, purposes: Sequence[str], days: int = 365) -> str:
    terms = default_terms(purposes, controller="pay", now=int(world.clock.now), days=days)
    (receipt,) = world.book.grant([ConsentGrant(ref, terms)])
    return receipt.record_id


def test_without_consent_nothing_runs_and_nothing_is_logged(world: World) -> None:
    rows = world.gate.open("model-training", "run-1", REFS[:3])
    assert rows.refs == () and set(rows.refused) == set(REFS[:3])
    assert world.uses() == []
    with pytest.raises(NotPermitted, match="no valid consent"):
        world.gate.require("marketing", "req-1", REFS[0])


def test_with_consent_it_runs_and_the_use_references_the_grant(world: World) -> None:
    grant(world, REFS[0], ["model-training"])
    grant(world, REFS[1], ["marketing"])
    rows = world.gate.open("model-training", "run-1", REFS[:3])
    assert rows.refs == (REFS[0],)
    assert rows.features.tolist() == [[0.0]]
    assert rows.refused == (REFS[1], REFS[2])  # consent for another purpose does not count
    (use_event,) = world.uses()
    grants = {e.consent: i for i, e in enumerate(world.events()) if e.TYPE == "consent.granted"}
    session, (use,) = open_data_use(use_event, AUDITOR_PEM)  # the auditor reads the reference
    assert use.consent_index == grants[use.consent]
    assert use_event.purpose == "model-training" and session == "run-1"
    # a second batch of the same session is checked again but logged once
    again = world.gate.open("model-training", "run-1", REFS[:1])
    assert again.refs == (REFS[0],) and len(world.uses()) == 1


def test_expired_and_revoked_consents_stop_uses(world: World) -> None:
    short = grant(world, REFS[0], ["marketing"], days=1)
    long = grant(world, REFS[1], ["marketing"])
    world.clock.now += 2 * DAY
    assert world.gate.open("marketing", "s1", REFS[:2]).refs == (REFS[1],)
    world.book.revoke([long])
    assert world.gate.open("marketing", "s2", REFS[:2]).refs == ()
    uses_before = len(world.uses())
    with pytest.raises(NotPermitted):
        world.gate.require("marketing", "s3", REFS[1])
    assert len(world.uses()) == uses_before
    assert short  # the expired one is simply not usable


def test_only_the_gate_makes_consented_rows() -> None:
    with pytest.raises(TypeError, match="only from ConsentGate"):
        ConsentedRows("marketing", "s", (), np.zeros((0, 1)), (), (), (), (), (), ())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"purposes": ("selling",)}, "purposes"),
        ({"purposes": ()}, "purposes"),
        ({"notice_version": ""}, "notice_version"),
        ({"expires_at": 1_700_000_000}, "expires_at lies in the past"),
        ({"collection_method": "telepathy"}, "collection_method"),
        ({"data_categories": ("dna",)}, "data_categories"),
        ({"jurisdiction": "X"}, "jurisdiction"),
    ],
)
def test_bad_records_name_the_field_and_change_nothing(
    world: World, change: dict, field: str
) -> None:  # type: ignore[type-arg]
    from dataclasses import replace

    terms = replace(
        default_terms(["marketing"], controller="pay", now=int(world.clock.now)), **change
    )
    with pytest.raises(InvalidInput, match=field):
        world.book.grant([ConsentGrant(REFS[0], terms)])
    assert world.events() == [] and world.book.records(REFS[0]) == []


def test_a_consent_for_an_unknown_customer_is_refused(world: World) -> None:
    with pytest.raises(NotFound, match="not a customer"):
        grant(world, "nobody", ["marketing"])


def test_no_identifier_reaches_the_ledger(world: World) -> None:
    for ref in REFS:
        grant(world, ref, ["marketing", "model-training"])
    world.gate.open("marketing", "s", REFS)
    world.book.revoke(world.book.active_record_ids(REFS[2]))
    raw = b"".join(e.data for e in world.ledger.store.get_entries(0, 1000))
    for i, ref in enumerate(REFS):
        for needle in (ref, f"+8869000000{i}", f"p{i}@example.com", "9000000"):
            assert needle.encode() not in raw


def _status_doc(world: World, record_id: str) -> dict:  # type: ignore[type-arg]
    world.ledger.checkpointer.publish()
    (record,) = [r for r in world.book.records(REFS[0]) if r.record_id == record_id]
    found = world.ledger.consent_status(record.consent_commitment)
    return proof_document(
        found.checkpoint.note,
        found.consent,
        found.status.encode().decode() if found.status else "",
        found.proof,
    )


def test_offline_status_proof(world: World) -> None:
    record_id = grant(world, REFS[0], ["marketing"])
    doc = _status_doc(world, record_id)
    valid = verify_consent_proof(doc, SIGNER.verifier)
    assert valid.status.purposes == ("marketing",)
    # a forged map root: the signature no longer covers it
    lines = doc["checkpoint"].split("\n")
    forged = dict(
        doc,
        checkpoint="\n".join(
            re.sub(r"^accord-status .*", "accord-status " + "A" * 43 + "=", line) for line in lines
        ),
    )
    with pytest.raises(CryptoError):
        verify_consent_proof(forged, SIGNER.verifier)
    # a checkpoint from another log, even with a proof that would fit its root
    other = NoteSigner.generate("evil.example/log")
    cp = Checkpoint.from_text(doc["checkpoint"].split("\n\n")[0] + "\n")
    foreign = dict(
        doc,
        checkpoint=sign_checkpoint(
            Checkpoint("evil.example/log", cp.size, cp.root_hash, cp.extensions), [other]
        ),
    )
    with pytest.raises(CryptoError):
        verify_consent_proof(foreign, SIGNER.verifier)
    # after revocation the fresh proof verifies and says revoked
    world.book.revoke([record_id])
    with pytest.raises(ConsentNotValid, match="revoked at ledger index"):
        verify_consent_proof(_status_doc(world, record_id), SIGNER.verifier)
    # and the old proof, made before the revocation, cannot be replayed as current: it names
    # its checkpoint, which an auditor compares with the latest
    assert (
        verify_consent_proof(doc, SIGNER.verifier).checkpoint.size < world.ledger.checkpoint().size
    )


def test_erasure_shreds_the_salt_and_leaves_the_ledger_verifiable(world: World) -> None:
    grant(world, REFS[0], ["marketing"])
    world.gate.open("marketing", "s", REFS[:1])
    opening = Opening("pay", REFS[0], world.book.salt(REFS[0]) or b"")
    before = world.ledger.checkpointer.publish()
    counts = world.book.erase(REFS[0])
    assert counts == {"consents_revoked": 1, "consent_records": 1, "data_uses": 1}
    assert world.book.salt(REFS[0]) is None and world.book.records(REFS[0]) == []
    assert world.gate.open("marketing", "s2", REFS[:1]).refs == ()
    after = world.ledger.checkpointer.publish()
    _, proof = world.ledger.consistency_proof(before.size, after.size)
    from accord.crypto.merkle import verify_consistency

    verify_consistency(before.size, after.size, before.root, after.root, proof)
    for i in range(after.size):
        size, leaf, p = world.ledger.inclusion_proof(i, after.size)
        verify_inclusion(leaf, i, size, p, after.root)
    # the node no longer holds anything to recompute the commitment from the identifier
    subjects = {e.subject for e in world.events() if hasattr(e, "subject")}
    assert opening.subject() in subjects  # the customer, who kept the opening, still can
    assert subject_commitment(sha256(b"guess").digest(), "pay", REFS[0]) not in subjects
    with pytest.raises(NotFound):
        world.book.erase(REFS[0])


def test_export_lists_everything_and_every_use() -> None:
    # Exercised end to end over gRPC in tests/integration/test_consent.py.
    assert json.dumps({}) == "{}"
