"""The node's ledger watch: it follows a growing log and keeps evidence of a rollback or fork."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from accord.crypto.keys import NoteSigner
from accord.crypto.merkle import CompactRange, MemoryNodeStore, consistency_proof, leaf_hash
from accord.crypto.note import Checkpoint, Note, sign_checkpoint, verify_checkpoint
from accord.errors import Conflict, InvalidInput
from accord.node.ledger_watch import LedgerWatch, alarms, clear_alarms, views
from accord.node.metrics import NodeCollector
from accord.node.witness import Witness
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

LOG = NoteSigner.generate("accord.test/coordinator")
IMPOSTOR = NoteSigner.generate("accord.test/coordinator")
ME = NoteSigner.generate("pay")


class Log:
    """A coordinator's ledger the test controls (a LedgerSource): grow, roll back, rewrite."""

    def __init__(self, prefix: str = "e") -> None:
        self.prefix = prefix
        self.store = MemoryNodeStore()
        self.range = CompactRange()
        self.signer = LOG

    def grow(self, n: int) -> Log:
        for _ in range(n):
            self.store.put(self.range.append(leaf_hash(f"{self.prefix}{self.range.size}".encode())))
        return self

    def latest(self) -> str:
        return sign_checkpoint(
            Checkpoint(LOG.name, self.range.size, self.range.root()), [self.signer]
        )

    def consistency(self, size1: int, size2: int) -> list[bytes]:
        if size2 != self.range.size:
            raise InvalidInput("only proofs to the latest size")
        return consistency_proof(self.store, size1, size2)


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node")
    return engine


def watch(engine, log: Log) -> LedgerWatch:  # type: ignore[no-untyped-def]
    return LedgerWatch(engine, log, LOG.verifier, clock=lambda: 1_800_000_000.0)


def test_follows_a_growing_log(engine) -> None:  # type: ignore[no-untyped-def]
    log = Log().grow(3)
    assert watch(engine, log).check().state == "first"
    assert watch(engine, log).check().state == "same"
    for n in (1, 7, 40):
        log.grow(n)
        result = watch(engine, log).check()
        assert (result.state, result.served_size) == ("extended", log.range.size)
    (view,) = views(engine)
    assert (view.size, bytes(view.root_hash)) == (51, log.range.root())
    assert alarms(engine) == []


def test_a_rolled_back_log_raises_an_alarm_and_the_view_stays(engine) -> None:  # type: ignore[no-untyped-def]
    before = Log().grow(20)
    watch(engine, before).check()
    restored = Log().grow(12)  # the same first 12 entries: an older backup of the same log
    result = watch(engine, restored).check()
    assert (result.state, result.held_size, result.served_size) == ("rollback", 20, 12)
    assert "8 entries are gone" in result.detail
    watch(engine, restored).check()
    (alarm,) = alarms(engine)
    assert (alarm.source, alarm.kind, alarm.held_size, alarm.served_size, alarm.times) == (
        "watch",
        "rollback",
        20,
        12,
        2,
    )
    # both checkpoints are kept, each verifiable by anyone with the coordinator's key
    assert verify_checkpoint(alarm.held_note, [LOG.verifier], origin=LOG.name).size == 20
    assert verify_checkpoint(alarm.served_note, [LOG.verifier], origin=LOG.name).size == 12
    assert views(engine)[0].size == 20
    metrics = CollectorRegistry()
    metrics.register(NodeCollector(engine))
    assert metrics.get_sample_value("accord_ledger_alarms") == 1
    # the restored log growing past the old size does not make it consistent again
    restored.prefix = "after-restore-"
    restored.grow(30)
    assert watch(engine, restored).check().state == "fork"
    assert views(engine)[0].size == 20


def test_a_rewritten_log_of_the_same_size_is_a_fork(engine) -> None:  # type: ignore[no-untyped-def]
    watch(engine, Log("e").grow(9)).check()
    assert watch(engine, Log("f").grow(9)).check().state == "fork"
    assert alarms(engine)[0].kind == "fork"


def test_a_log_that_lies_about_its_proof_is_a_fork(engine) -> None:  # type: ignore[no-untyped-def]
    watch(engine, Log("e").grow(9)).check()
    other = Log("f").grow(30)  # signed by the log's key, but not an extension of what was held
    result = watch(engine, other).check()
    assert result.state == "fork"
    assert "does not extend checkpoint 9" in result.detail


def test_a_checkpoint_under_another_key_is_refused_and_changes_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    log = Log().grow(4)
    watch(engine, log).check()
    forged = Log().grow(2)
    forged.signer = IMPOSTOR
    with pytest.raises(InvalidInput, match="does not verify"):
        watch(engine, forged).check()
    assert views(engine)[0].size == 4
    assert alarms(engine) == []


def test_what_the_witness_cosigned_is_held_too(engine) -> None:  # type: ignore[no-untyped-def]
    log = Log().grow(10)
    witness = Witness(engine, ME, [LOG.verifier], clock=lambda: 1_800_000_000.0)
    witness.add_checkpoint(0, log.latest(), [])
    # the watch never saw size 10 itself, but its witness cosigned it
    assert watch(engine, Log().grow(6)).check().state == "rollback"


def test_the_view_follows_a_checkpoint_the_witness_cosigned_first(engine) -> None:  # type: ignore[no-untyped-def]
    log = Log().grow(4)
    watch(engine, log).check()
    log.grow(6)
    witness = Witness(engine, ME, [LOG.verifier], clock=lambda: 1_800_000_000.0)
    witness.add_checkpoint(0, log.latest(), [])
    assert watch(engine, log).check().state == "same"  # already held, through the witness
    (view,) = views(engine)
    assert view.size == 10  # and the watch's own view caught up with it


def test_the_witness_keeps_a_refused_fork_as_an_alarm(engine) -> None:  # type: ignore[no-untyped-def]
    honest = Log("e").grow(8)
    witness = Witness(engine, ME, [LOG.verifier], clock=lambda: 1_800_000_000.0)
    witness.add_checkpoint(0, honest.latest(), [])
    rewritten = Log("f").grow(8)
    with pytest.raises(Conflict, match="fork"):
        witness.add_checkpoint(8, rewritten.latest(), [])
    (alarm,) = alarms(engine)
    assert (alarm.source, alarm.kind, alarm.held_size, alarm.served_size) == (
        "witness",
        "fork",
        8,
        8,
    )
    assert Note.parse(alarm.served_note).signatures[0].name == LOG.name
    # the refusal changed what the witness holds not at all
    assert witness.latest(LOG.name).root_hash == honest.range.root()


def test_clearing_alarms_follows_the_log_as_served(engine) -> None:  # type: ignore[no-untyped-def]
    witness = Witness(engine, ME, [LOG.verifier], clock=lambda: 1_800_000_000.0)
    witness.add_checkpoint(0, Log().grow(10).latest(), [])
    restored = Log().grow(6)
    watch(engine, restored).check()
    assert clear_alarms(engine) == 1
    assert watch(engine, restored).check().state == "first"
    assert alarms(engine) == []
    assert witness.latest(LOG.name).size == 0
