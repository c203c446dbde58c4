"""The soak's own checks: its fault plan, and its verdict on checkpoints a log served."""

from __future__ import annotations

import itertools
import random

from accord.bench.soak_faults import COORDINATOR, POSTGRES, RecoveryWatch, fault_plan
from accord.bench.soak_ledger import consistency_problem
from accord.crypto import merkle
from accord.crypto.merkle import CompactRange, MemoryNodeStore
from accord.crypto.note import Checkpoint

NODES = ["pay", "shop", "social", "label"]
ORIGIN = "bench.local/coordinator"


def _log(entries: list[bytes]) -> tuple[MemoryNodeStore, list[Checkpoint]]:
    """A log of ``entries`` and its checkpoint at every size."""
    store, tree = MemoryNodeStore(), CompactRange()
    heads = [Checkpoint(ORIGIN, 0, merkle.reference_root([]))]
    for entry in entries:
        store.put(tree.append(merkle.leaf_hash(entry)))
        heads.append(Checkpoint(ORIGIN, tree.size, tree.root()))
    return store, heads


def test_the_plan_kills_the_coordinator_and_a_node_first_and_every_party_in_a_long_run() -> None:
    short = fault_plan(random.Random(1), NODES, 18, 7, postgres=False)
    assert short[0].target == COORDINATOR and short[1].target in NODES
    long = fault_plan(random.Random(1), NODES, 600, 40, postgres=False)
    assert {f.target for f in long} == {COORDINATOR, *NODES}
    assert all(0 < a.at_s < b.at_s < 600 for a, b in itertools.pairwise(long))
    with_pg = fault_plan(random.Random(1), NODES, 600, 40, postgres=True)
    assert [f.target for f in with_pg].count(POSTGRES) == 1
    assert fault_plan(random.Random(2), NODES, 600, 40, False) == fault_plan(
        random.Random(2), NODES, 600, 40, False
    )


def test_an_extension_passes_and_a_rollback_a_fork_or_a_forged_proof_do_not() -> None:
    store, heads = _log([f"entry {i}".encode() for i in range(13)])
    proof = tuple(merkle.consistency_proof(store, 5, 13))
    assert consistency_problem(heads[5], heads[13], proof) is None
    assert consistency_problem(heads[13], heads[13], ()) is None
    assert "rollback" in str(consistency_problem(heads[13], heads[5], ()))
    # another history of the same size: a fork, and no proof links it to the first one
    other_store, other = _log([f"other {i}".encode() for i in range(13)])
    assert "fork" in str(consistency_problem(heads[13], other[13], ()))
    assert consistency_problem(heads[5], other[13], proof) is not None
    assert consistency_problem(
        heads[5], other[13], tuple(merkle.consistency_proof(other_store, 5, 13))
    )


def test_recovery_counts_only_operations_that_started_after_the_kill() -> None:
    watch = RecoveryWatch()
    watch.start("pay", killed_at=100.0)
    watch.touch({"pay"}, started=99.0, finished=101.0)  # in flight at the kill
    watch.touch({"shop"}, started=100.5, finished=101.0)  # another party
    watch.touch({"pay", COORDINATOR}, started=102.0, finished=103.5)
    assert watch.wait("pay", timeout_s=0.1) == 3.5
    watch.start(COORDINATOR, killed_at=200.0)
    assert watch.wait(COORDINATOR, timeout_s=0.1) is None
