"""accord.auditing.witnesses over real (in-process) witnesses: quorum, refusals, split views."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from accord.audit import AuditFailure, VerifiedCheckpoint
from accord.auditing.witnesses import (
    WitnessNode,
    WitnessRefused,
    WitnessUnreachable,
    check_quorum_size,
    request_cosignature,
    require_quorum,
    witness_status,
)
from accord.crypto.keys import NoteSigner
from accord.crypto.merkle import (
    CompactRange,
    ConsistencyProof,
    MemoryNodeStore,
    consistency_proof,
    leaf_hash,
)
from accord.crypto.note import Checkpoint, sign_checkpoint
from accord.errors import AccordError, InvalidInput
from accord.node.witness import Witness
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

LOG = NoteSigner.generate("accord.test/coordinator")
NAMES = ("pay", "shop", "social", "label")
SIGNERS = {n: NoteSigner.generate(n) for n in NAMES}


class Log:
    def __init__(self, prefix: str) -> None:
        self.store, self.range, self.prefix = MemoryNodeStore(), CompactRange(), prefix

    def grow(self, n: int) -> VerifiedCheckpoint:
        for _ in range(n):
            self.store.put(self.range.append(leaf_hash(f"{self.prefix}{self.range.size}".encode())))
        cp = Checkpoint(LOG.name, self.range.size, self.range.root())
        return VerifiedCheckpoint(cp, sign_checkpoint(cp, [LOG]))

    def consistency(self, size1: int, size2: int, root1: bytes, root2: bytes) -> ConsistencyProof:
        """What the coordinator would serve, verified as the auditor's client does."""
        if size1 == 0:
            return ConsistencyProof(0, size2, root1, root2, ())
        proof = ConsistencyProof(
            size1, size2, root1, root2, tuple(consistency_proof(self.store, size1, size2))
        )
        try:
            proof.verify()
        except AccordError as exc:
            raise AuditFailure(str(exc)) from exc
        return proof


class Link:
    """A witness reached in-process; errors become what the gRPC client raises."""

    def __init__(self, witness: Witness, *, down: bool = False) -> None:
        self.witness, self.down = witness, down

    def latest(self, origin: str) -> tuple[int, str]:
        if self.down:
            raise WitnessUnreachable("down")
        latest = self.witness.latest(origin)
        return latest.size, latest.note

    def add_checkpoint(self, old_size: int, note: str, proof: Sequence[bytes]) -> str:
        try:
            return self.witness.add_checkpoint(old_size, note, proof).line()
        except AccordError as exc:
            raise WitnessRefused(str(exc), type(exc).__name__) from exc


@pytest.fixture
def witnesses(tmp_path: Path) -> dict[str, Link]:
    links = {}
    for name in NAMES:
        engine = make_engine(f"sqlite:///{tmp_path / name}.db")
        upgrade(engine, "node")
        links[name] = Link(Witness(engine, SIGNERS[name], [LOG.verifier]))
    return links


def node(name: str) -> WitnessNode:
    return WitnessNode(name, "127.0.0.1:1", SIGNERS[name].verifier)


def ask(links: dict[str, Link], target: VerifiedCheckpoint, log: Log, names: Sequence[str] = NAMES):  # type: ignore[no-untyped-def]
    return [
        request_cosignature(links[n], node(n), target, LOG.verifier, log.consistency) for n in names
    ]


def test_honest_log_gets_every_cosignature_as_it_grows(witnesses: dict[str, Link]) -> None:
    log = Log("e")
    for grow in (3, 5, 1):
        target = log.grow(grow)
        results = ask(witnesses, target, log)
        assert [r.status for r in results] == ["cosigned"] * 4, [r.problem for r in results]
        require_quorum(results, 4, target.checkpoint)
    assert results[0].held_size == 8


def test_split_view_gets_no_quorum_on_either_side_and_names_the_fork(
    witnesses: dict[str, Link],
) -> None:
    honest, forked = Log("e"), Log("f")
    a, b = honest.grow(10), forked.grow(10)
    ask(witnesses, b, forked, ["social", "label"])  # the coordinator showed them view B
    for target, log in ((a, honest), (b, forked)):
        results = ask(witnesses, target, log)
        assert sum(r.cosignature is not None for r in results) == 2
        refused = [r for r in results if r.cosignature is None]
        assert all(r.fork is not None and "refused" in (r.problem or "") for r in refused)
        with pytest.raises(AuditFailure) as err:
            require_quorum(results, 3, target.checkpoint)
        message = str(err.value)
        assert message.startswith("fork:") and "2 of the 3" in message
        assert "\n" not in message
        # even a quorum the fork does not prevent arithmetically is refused
        with pytest.raises(AuditFailure, match="fork"):
            require_quorum(results, 2, target.checkpoint)


def test_a_forked_view_that_grew_is_still_caught(witnesses: dict[str, Link]) -> None:
    honest, forked = Log("e"), Log("f")
    ask(witnesses, forked.grow(4), forked, ["label"])
    target = honest.grow(9)
    (result,) = ask(witnesses, target, honest, ["label"])
    assert result.fork is not None
    assert "no consistency proof connects checkpoints 4 and 9" in result.fork.reason
    status = witness_status(
        witnesses["label"], node("label"), target.checkpoint, LOG.verifier, honest.consistency
    )
    assert status.state == "fork"


def test_too_few_answers_is_a_plain_quorum_failure(witnesses: dict[str, Link]) -> None:
    log = Log("e")
    target = log.grow(3)
    witnesses["shop"].down = True
    results = ask(witnesses, target, log)
    assert [r.status for r in results] == ["cosigned", "no cosignature", "cosigned", "cosigned"]
    require_quorum(results, 3, target.checkpoint)
    with pytest.raises(AuditFailure, match=r"only 3 of the 4 .* shop: unreachable"):
        require_quorum(results, 4, target.checkpoint)


def test_an_old_checkpoint_is_not_cosigned_but_is_not_a_fork(witnesses: dict[str, Link]) -> None:
    log = Log("e")
    old = log.grow(3)
    new = log.grow(3)
    ask(witnesses, new, log, ["pay"])
    (result,) = ask(witnesses, old, log, ["pay"])
    assert result.fork is None and "newer checkpoint 6" in (result.problem or "")
    status = witness_status(
        witnesses["pay"], node("pay"), old.checkpoint, LOG.verifier, log.consistency
    )
    assert status.state == "consistent"


def test_a_witness_answering_with_a_bad_cosignature_does_not_count(
    witnesses: dict[str, Link],
) -> None:
    log = Log("e")
    target = log.grow(2)
    impostor = WitnessNode("pay", "127.0.0.1:1", SIGNERS["shop"].verifier)
    result = request_cosignature(witnesses["pay"], impostor, target, LOG.verifier, log.consistency)
    assert result.cosignature is None and "invalid cosignature" in (result.problem or "")


def test_quorum_size_is_checked_against_the_registry() -> None:
    with pytest.raises(InvalidInput):
        check_quorum_size(5, [node(n) for n in NAMES])
    with pytest.raises(InvalidInput):
        check_quorum_size(0, [node(n) for n in NAMES])
    check_quorum_size(4, [node(n) for n in NAMES])


def test_a_log_witnessed_while_empty_grows_without_alarm(witnesses: dict[str, Link]) -> None:
    log = Log("e")
    for grow in (0, 4):
        target = log.grow(grow)
        results = ask(witnesses, target, log)
        require_quorum(results, 4, target.checkpoint)


def test_the_auditors_client_needs_no_proof_from_the_empty_tree() -> None:
    import grpc

    from accord.auditing.entries import AuditClient

    with grpc.insecure_channel("127.0.0.1:9") as channel:  # never called
        client = AuditClient(channel, LOG.verifier, "nowhere")
        assert client.consistency(0, 7, b"", bytes(32)).proof == ()
        with pytest.raises(AuditFailure, match="not consistent"):
            client.consistency(5, 5, bytes(32), bytes(range(32)))
