"""The node as a witness: it cosigns only checkpoints consistent with what it cosigned before."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from accord.crypto.cosignature import verify_cosignature
from accord.crypto.keys import NoteSigner
from accord.crypto.merkle import CompactRange, MemoryNodeStore, consistency_proof, leaf_hash
from accord.crypto.note import Checkpoint, Note, sign_checkpoint
from accord.errors import Conflict, InvalidInput, NotFound, NotPermitted, NotReady
from accord.node.witness import Witness
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

LOG = NoteSigner.generate("accord.test/coordinator")
IMPOSTOR = NoteSigner.generate("accord.test/coordinator")
ME = NoteSigner.generate("pay")


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Tree:
    """A log the test controls: append entries, sign checkpoints, prove consistency."""

    def __init__(self, prefix: str = "e") -> None:
        self.store = MemoryNodeStore()
        self.range = CompactRange()
        self.prefix = prefix

    def grow(self, n: int) -> None:
        for _ in range(n):
            self.store.put(self.range.append(leaf_hash(f"{self.prefix}{self.range.size}".encode())))

    def note(self, signer: NoteSigner = LOG, extensions: tuple[str, ...] = ()) -> str:
        cp = Checkpoint(LOG.name, self.range.size, self.range.root(), extensions)
        return sign_checkpoint(cp, [signer])

    def proof(self, size1: int) -> list[bytes]:
        return consistency_proof(self.store, size1, self.range.size)


@pytest.fixture
def witness(db_url: str) -> Witness:
    engine = make_engine(db_url)
    upgrade(engine, "node")
    return Witness(engine, ME, [LOG.verifier], clock=Clock())


def cosigned(witness: Witness, old: int, note: str, proof: list[bytes]) -> int:
    line = witness.add_checkpoint(old, note, proof)
    return verify_cosignature(Note.parse(note).text, line, ME.verifier).timestamp


def test_cosigns_a_growing_log_and_remembers_it(witness: Witness) -> None:
    tree = Tree()
    tree.grow(5)
    assert witness.latest(LOG.name).size == 0
    assert cosigned(witness, 0, tree.note(), []) == 1_800_000_000
    for add in (1, 6, 20):
        before = tree.range.size
        tree.grow(add)
        cosigned(witness, before, tree.note(), tree.proof(before))
    latest = witness.latest(LOG.name)
    assert (latest.size, latest.root_hash) == (32, tree.range.root())
    assert Note.parse(latest.note).signatures[0].name == LOG.name
    # the same tree again is fine (a fresh timestamp on the same statement)
    cosigned(witness, 32, tree.note(), [])


def test_refuses_a_fork_of_the_same_size(witness: Witness) -> None:
    honest, forked = Tree("e"), Tree("f")
    honest.grow(8)
    forked.grow(8)
    cosigned(witness, 0, honest.note(), [])
    with pytest.raises(Conflict, match="fork"):
        witness.add_checkpoint(8, forked.note(), [])
    assert witness.latest(LOG.name).root_hash == honest.range.root()


def test_refuses_same_tree_with_other_extension_lines(witness: Witness) -> None:
    tree = Tree()
    tree.grow(3)
    cosigned(witness, 0, tree.note(extensions=("accord-status AAAA",)), [])
    with pytest.raises(Conflict, match="extension"):
        witness.add_checkpoint(3, tree.note(extensions=("accord-status BBBB",)), [])


def test_refuses_an_inconsistent_larger_checkpoint(witness: Witness) -> None:
    honest, forked = Tree("e"), Tree("f")
    honest.grow(4)
    cosigned(witness, 0, honest.note(), [])
    forked.grow(10)
    with pytest.raises(Conflict, match="not consistent"):
        witness.add_checkpoint(4, forked.note(), forked.proof(4))
    honest.grow(6)
    with pytest.raises(Conflict):  # the honest proof does not fit the forked root either
        witness.add_checkpoint(4, forked.note(), honest.proof(4))
    assert witness.latest(LOG.name).size == 4


def test_refuses_older_checkpoints_and_a_stale_old_size(witness: Witness) -> None:
    tree = Tree()
    tree.grow(4)
    old_note = tree.note()
    cosigned(witness, 0, old_note, [])
    tree.grow(4)
    cosigned(witness, 4, tree.note(), tree.proof(4))
    with pytest.raises(InvalidInput, match="older"):
        witness.add_checkpoint(8, old_note, [])
    tree.grow(1)
    with pytest.raises(NotReady, match="size 8"):
        witness.add_checkpoint(4, tree.note(), tree.proof(4))


def test_refuses_what_the_log_did_not_sign_and_logs_it_does_not_witness(witness: Witness) -> None:
    tree = Tree()
    tree.grow(2)
    with pytest.raises(NotPermitted):
        witness.add_checkpoint(0, tree.note(IMPOSTOR), [])
    other = sign_checkpoint(Checkpoint("other.example/log", 2, tree.range.root()), [LOG])
    with pytest.raises(NotFound):
        witness.add_checkpoint(0, other, [])
    with pytest.raises(NotFound):
        witness.latest("other.example/log")
    for bad in ("", "not a note", tree.note()[:40]):
        with pytest.raises(InvalidInput):
            witness.add_checkpoint(0, bad, [])
    with pytest.raises(InvalidInput):
        witness.add_checkpoint(0, tree.note(), [bytes(32)])  # a proof from size 0
    with pytest.raises(InvalidInput):
        witness.add_checkpoint(0, tree.note(), [bytes(31)])
    with pytest.raises(InvalidInput):
        witness.add_checkpoint(0, tree.note(), [bytes(32)] * 64)
    assert witness.latest(LOG.name).size == 0


def test_cosigned_empty_log_then_growth(witness: Witness) -> None:
    tree = Tree()
    cosigned(witness, 0, tree.note(), [])
    tree.grow(3)
    cosigned(witness, 0, tree.note(), [])
    assert witness.latest(LOG.name).size == 3


def test_state_survives_a_restart(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "node")
    tree, forked = Tree("e"), Tree("f")
    tree.grow(5)
    forked.grow(5)
    Witness(engine, ME, [LOG.verifier]).add_checkpoint(0, tree.note(), [])
    again = Witness(make_engine(db_url), ME, [LOG.verifier])
    with pytest.raises(Conflict):
        again.add_checkpoint(5, forked.note(), [])
