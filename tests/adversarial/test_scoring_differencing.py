"""A curious marketer and a curious coordinator who try to difference scoring sums (P2).

A score is a masked sum of the contributing nodes' embeddings of one customer. Two sums over
different sets of nodes for the same customer and model difference into one node's embedding:
a full answer minus one without C is e_C, and S{A,B} + S{A,C} - S{B,C} = 2·e_A. The marketer
picks the set by leaving presentations out; the coordinator, who names the participants, can
pick any set outright. Against the real processes of the shared trust network (and, for the
lone-channel estimate, the LTV network), each test plays one such attempt and checks that
every second set is refused before anything is computed or logged. Before the fix every one
of these answered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from accord.credentials import holder_public_json, issue, new_holder_key, present
from accord.launcher import LocalNetwork
from accord.pki_layout import COORDINATOR, load_coordinator_signer
from accord.proto.v1 import scoring_pb2, scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.touchpoint import ask, subject

FEATURES = ("pay", "shop", "social")


def _db(path: Path):  # type: ignore[no-untyped-def]
    return create_engine(f"sqlite:///{path}")


def _current_model(network: LocalNetwork) -> tuple[str, str]:
    engine = _db(network.workdir / "coordinator" / "coordinator.db")
    with engine.connect() as conn:
        model, run = conn.execute(
            text(
                "SELECT model_id, alignment_run FROM model_version ORDER BY created_at DESC LIMIT 1"
            )
        ).one()
    engine.dispose()
    return str(model), str(run)


def _customers_held_by(network: LocalNetwork, holders: int, skip: int, count: int) -> list[bytes]:
    """Row keys (the coordinator's) of aligned customers ``holders`` parties hold (the label
    node included), skipping the first ``skip`` so other tests' customers stay theirs."""
    _, run = _current_model(network)
    engine = _db(network.workdir / "coordinator" / "coordinator.db")
    with engine.connect() as conn:
        keys = [
            bytes(r[0])
            for r in conn.execute(
                text(
                    "SELECT row_key FROM aligned_row WHERE run_id = :r GROUP BY row_key "
                    "HAVING COUNT(*) = :n AND row_key NOT IN (SELECT row_key FROM blocked_row) "
                    "ORDER BY row_key"
                ),
                {"r": run, "n": holders},
            )
        ]
    engine.dispose()
    return keys[skip : skip + count]


def _brand_ref(network: LocalNetwork, row_key: bytes) -> str:
    _, run = _current_model(network)
    engine = _db(network.node_dir("label") / "node.db")
    with engine.connect() as conn:
        ref = conn.execute(
            text("SELECT local_ref FROM alignment_row WHERE run_id = :r AND row_key = :k"),
            {"r": run, "k": row_key},
        ).scalar_one()
    engine.dispose()
    return str(ref)


def _uses(network: LocalNetwork, node: str, session: str) -> int:
    engine = _db(network.node_dir(node) / "node.db")
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT COUNT(*) FROM data_use WHERE session = :s"), {"s": session}
        ).scalar()
    engine.dispose()
    return int(count or 0)


def _marketer(network: LocalNetwork) -> tuple[grpc.Channel, scoring_pb2_grpc.ScoringStub]:
    creds = PartyCredentials.load(network.pki_dir / "marketer")
    channel = creds.channel(network.parties["coordinator"].endpoint, COORDINATOR)
    return channel, scoring_pb2_grpc.ScoringStub(channel)


def _score_presenting_to(
    stub: scoring_pb2_grpc.ScoringStub, ref: str, nodes: Sequence[str]
) -> scoring_pb2.ScoreResponse:
    """A touchpoint that begins honestly, then presents the credential to ``nodes`` only."""
    key = new_holder_key()
    begun = stub.Begin(
        scoring_pb2.BeginRequest(
            touchpoint="checkout",
            subject=subject(ref),
            purpose="marketing",
            holder_jwk=holder_public_json(key),
        ),
        timeout=10,
    )
    assert not begun.refusal, begun.refusal
    presentations = [
        scoring_pb2.Presentation(node=n, sd_jwt=present(begun.credential, n, key))
        for n in begun.nodes
        if n in nodes
    ]
    answer: scoring_pb2.ScoreResponse = stub.Score(
        scoring_pb2.ScoreRequest(request_id=begun.request_id, presentations=presentations),
        timeout=10,
    )
    return answer


def test_a_marketer_who_leaves_a_presentation_out_gets_no_second_subset(trained) -> None:  # type: ignore[no-untyped-def]
    network, _, _ = trained
    first, second = (
        _brand_ref(network, k) for k in _customers_held_by(network, 4, skip=40, count=2)
    )
    channel, stub = _marketer(network)
    try:
        # a full answer, then the same customer without social: their difference is e_social
        full = ask(stub, "checkout", subject(first), "marketing")
        assert full.scored and sorted(full.sources) == list(FEATURES), full.explanation
        less = _score_presenting_to(stub, first, ["pay", "shop"])
        assert not less.scored and not less.HasField("trust")
        assert "cannot score now" in less.explanation, less.explanation
        assert all(_uses(network, n, less.request_id) == 0 for n in FEATURES)
        # the other way round: a degraded answer first, then the full set is refused
        few = _score_presenting_to(stub, second, ["pay", "shop"])
        assert few.scored and sorted(few.sources) == ["pay", "shop"], few.explanation
        more = ask(stub, "checkout", subject(second), "marketing")
        assert not more.scored and not more.HasField("trust"), more.explanation
        assert "cannot score now" in more.explanation
        # the same set again gives the same sum: nothing new, so it still answers
        again = _score_presenting_to(stub, second, ["pay", "shop"])
        assert again.scored and again.trust == few.trust
    finally:
        channel.close()


class CuriousCoordinator:
    """The coordinator's own keys, speaking to the nodes directly: it issues credentials for
    any set of nodes and names any participants in COMPUTE."""

    def __init__(self, network: LocalNetwork) -> None:
        self.network = network
        pki = network.pki_dir / COORDINATOR
        self.signer = load_coordinator_signer(pki)
        self.creds = PartyCredentials.load(pki)
        self.model, self.run = _current_model(network)
        engine = _db(network.workdir / "coordinator" / "coordinator.db")
        with engine.connect() as conn:
            self.kx = {
                str(c): bytes(k)
                for c, k in conn.execute(text("SELECT channel, kx_key FROM registered_node"))
            }
        self.engine = engine
        self.channels: dict[str, grpc.Channel] = {}
        self.sent = 0

    def node_keys(self, row_key: bytes) -> dict[str, bytes]:
        with self.engine.connect() as conn:
            return {
                str(n): bytes(k)
                for n, k in conn.execute(
                    text(
                        "SELECT node, node_row_key FROM aligned_row "
                        "WHERE run_id = :r AND row_key = :k"
                    ),
                    {"r": self.run, "k": row_key},
                )
            }

    def stub(self, node: str) -> scoring_pb2_grpc.NodeScoringStub:
        if node not in self.channels:
            self.channels[node] = self.creds.channel(self.network.parties[node].endpoint, node)
        return scoring_pb2_grpc.NodeScoringStub(self.channels[node])

    def sum_over(self, row_key: bytes, nodes: Sequence[str]) -> dict[str, object]:
        """One request for ``row_key`` over exactly ``nodes``: each node's COMPUTE reply, or
        the status code it refused with."""
        self.sent += 1
        request_id = f"curious-{self.sent:04d}-{row_key.hex()[:8]}"
        keys = self.node_keys(row_key)
        holder = new_holder_key()
        issued = issue(
            self.signer,
            request_id=request_id,
            purposes=["marketing"],
            touchpoint="checkout",
            model=self.model,
            nodes={n: (self.kx[n], keys[n]) for n in nodes},
            holder_jwk=holder_public_json(holder),
            now=int(time.time()),
        )
        out: dict[str, object] = {}
        for node in nodes:
            presentation = present(issued.credential, node, holder)
            stub = self.stub(node)
            check = stub.Embed(
                scoring_pb2.EmbedRequest(
                    request_id=request_id,
                    sd_jwt=presentation,
                    phase=scoring_pb2.EMBED_PHASE_CHECK,
                    purpose="marketing",
                ),
                timeout=10,
            )
            assert check.permitted
            try:
                out[node] = stub.Embed(
                    scoring_pb2.EmbedRequest(
                        request_id=request_id,
                        sd_jwt=presentation,
                        phase=scoring_pb2.EMBED_PHASE_COMPUTE,
                        participants=list(nodes),
                        purpose="marketing",
                    ),
                    timeout=10,
                )
            except grpc.RpcError as err:
                out[node] = err.code()  # type: ignore[attr-defined]
        return out

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.engine.dispose()


def test_a_coordinator_naming_three_pairs_for_one_customer_gets_one_sum(trained) -> None:  # type: ignore[no-untyped-def]
    """S{pay,shop} + S{pay,social} - S{shop,social} = 2·e_pay: the coordinator needs all three
    sums complete; after the first, every node that already contributed refuses."""
    network, _, _ = trained
    (row_key,) = _customers_held_by(network, 4, skip=50, count=1)
    curious = CuriousCoordinator(network)
    try:
        pairs = [("pay", "shop"), ("pay", "social"), ("shop", "social")]
        answers = [curious.sum_over(row_key, pair) for pair in pairs]
    finally:
        curious.close()
    complete = [
        pair
        for pair, got in zip(pairs, answers, strict=True)
        if all(isinstance(got[n], scoring_pb2.EmbedResponse) for n in pair)
    ]
    assert complete == [("pay", "shop")]
    assert answers[1]["pay"] == grpc.StatusCode.FAILED_PRECONDITION
    assert answers[2]["shop"] == grpc.StatusCode.FAILED_PRECONDITION
    # a refusal logs no use: pay and shop each logged one, for the first pair only
    for node in ("pay", "shop"):
        assert (
            sum(_uses(network, node, f"curious-{i:04d}-{row_key.hex()[:8]}") for i in (1, 2, 3))
            == 1
        )


def _ltv_refs(network: LocalNetwork, holders: int, skip: int, count: int) -> list[str]:
    engine = _db(network.workdir / "coordinator" / "coordinator.db")
    with engine.connect() as conn:
        run = conn.execute(
            text("SELECT alignment_run FROM model_version WHERE kind = 'ltv' LIMIT 1")
        ).scalar_one()
        keys = [
            bytes(r[0])
            for r in conn.execute(
                text(
                    "SELECT row_key FROM aligned_row WHERE run_id = :r GROUP BY row_key "
                    "HAVING COUNT(*) = :n ORDER BY row_key"
                ),
                {"r": run, "n": holders},
            )
        ]
    engine.dispose()
    label = _db(network.node_dir("label") / "node.db")
    with label.connect() as conn:
        refs = [
            str(
                conn.execute(
                    text("SELECT local_ref FROM alignment_row WHERE run_id = :r AND row_key = :k"),
                    {"r": run, "k": k},
                ).scalar_one()
            )
            for k in keys[skip : skip + count]
        ]
    label.dispose()
    return refs


def test_a_marketer_presenting_to_one_of_two_holders_gets_no_lone_estimate(
    ltv_network: tuple[LocalNetwork, Path],
) -> None:
    """A customer two channels hold is answered by their sum or not at all: presenting to one
    of them must not make it answer alone with its own estimate."""
    network, _ = ltv_network
    creds = PartyCredentials.load(network.pki_dir / "marketer")
    channel = creds.channel(network.parties["coordinator"].endpoint, COORDINATOR)
    stub = scoring_pb2_grpc.ScoringStub(channel)
    try:
        tried = 0
        for ref in _ltv_refs(network, 3, skip=30, count=12):  # the label and two channels
            key = new_holder_key()
            begun = stub.Begin(
                scoring_pb2.BeginRequest(
                    touchpoint="checkout",
                    subject=subject(ref),
                    purpose="marketing",
                    holder_jwk=holder_public_json(key),
                ),
                timeout=10,
            )
            if begun.refusal:
                continue
            assert len(begun.nodes) == 2
            lone = begun.nodes[0]
            answer = stub.Score(
                scoring_pb2.ScoreRequest(
                    request_id=begun.request_id,
                    presentations=[
                        scoring_pb2.Presentation(
                            node=lone, sd_jwt=present(begun.credential, lone, key)
                        )
                    ],
                ),
                timeout=10,
            )
            assert not answer.scored and not answer.HasField("ltv"), answer.explanation
            assert "cannot score" in answer.explanation
            assert _uses(network, lone, begun.request_id) == 0
            tried += 1
        assert tried >= 3
    finally:
        channel.close()


def test_a_coordinator_asking_one_of_two_holders_for_its_own_estimate_is_refused(
    ltv_network: tuple[LocalNetwork, Path],
) -> None:
    """The node checks it alone holds the customer (the credential's audience) before it
    answers with its own estimate, so the coordinator cannot skip the check it does itself."""
    network, _ = ltv_network
    (ref,) = _ltv_refs(network, 3, skip=60, count=1)
    engine = _db(network.workdir / "coordinator" / "coordinator.db")
    with engine.connect() as conn:
        model, run = conn.execute(
            text("SELECT model_id, alignment_run FROM model_version WHERE kind = 'ltv' LIMIT 1")
        ).one()
        kx = {
            str(c): bytes(k)
            for c, k in conn.execute(text("SELECT channel, kx_key FROM registered_node"))
        }
    engine.dispose()
    label = _db(network.node_dir("label") / "node.db")
    with label.connect() as conn:
        row_key = bytes(
            conn.execute(
                text("SELECT row_key FROM alignment_row WHERE run_id = :r AND local_ref = :l"),
                {"r": run, "l": ref},
            ).scalar_one()
        )
    label.dispose()
    engine = _db(network.workdir / "coordinator" / "coordinator.db")
    with engine.connect() as conn:
        keys = {
            str(n): bytes(k)
            for n, k in conn.execute(
                text(
                    "SELECT node, node_row_key FROM aligned_row WHERE run_id = :r "
                    "AND row_key = :k AND node != 'label'"
                ),
                {"r": run, "k": row_key},
            )
        }
    engine.dispose()
    assert len(keys) == 2
    pki = network.pki_dir / COORDINATOR
    creds = PartyCredentials.load(pki)
    holder = new_holder_key()
    issued = issue(
        load_coordinator_signer(pki),
        request_id="curious-own-estimate",
        purposes=["marketing"],
        touchpoint="checkout",
        model=str(model),
        nodes={n: (kx[n], k) for n, k in keys.items()},
        holder_jwk=holder_public_json(holder),
        now=int(time.time()),
    )
    node = sorted(keys)[0]
    with creds.channel(network.parties[node].endpoint, node) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            scoring_pb2_grpc.NodeScoringStub(channel).Embed(
                scoring_pb2.EmbedRequest(
                    request_id="curious-own-estimate",
                    sd_jwt=present(issued.credential, node, holder),
                    phase=scoring_pb2.EMBED_PHASE_OWN_ESTIMATE,
                    purpose="marketing",
                ),
                timeout=10,
            )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "answers alone only" in refused.value.details()  # type: ignore[attr-defined]
    assert _uses(network, node, "curious-own-estimate") == 0
