"""A replayed scoring credential (issue 16, item 8): after expiry, and after a node restarts.

A curious coordinator holds every presentation it relayed. Replaying one to a node's
``NodeScoring.Embed`` would get a second masked embedding of the same customer (under another
participant set, to difference it), or a second CHECK of its consent. Each presentation is
accepted once per phase: before, the record of that lived in the node's memory only (a node
restarted, or killed, forgot it) and a credential was accepted 30 s past its expiry, a window
its pruning did not cover. Now the record is in the node's store and expiry has no grace.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from sqlalchemy import Engine, create_engine, text

from accord.credentials import (
    CLOCK_SKEW_S,
    CredentialRejected,
    holder_public_json,
    issue,
    new_holder_key,
    present,
    verify,
)
from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.launcher import LocalNetwork
from accord.node.replay_cache import PRUNE_EVERY_S, UsedCredentials
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import scoring_pb2, scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

NOW = 1_800_000_000
SIGNER = NoteSigner.generate("accord.test/coordinator")
PAY = KeyAgreementKey.generate()


def _presentation(now: int) -> tuple[str, int]:
    holder = new_holder_key()
    issued = issue(
        SIGNER,
        request_id="r-1",
        purposes=["marketing"],
        touchpoint="checkout",
        model="m-1",
        nodes={"pay": (PAY.public_key, bytes(16))},
        holder_jwk=holder_public_json(holder),
        now=now,
    )
    return present(issued.credential, "pay", holder), issued.expires


def _verify(presentation: str, now: int) -> None:
    verify(
        presentation, node="pay", kx_key=PAY, issuer=SIGNER.verifier, purpose="marketing", now=now
    )


def test_a_credential_is_refused_the_second_it_expires() -> None:
    presentation, expires = _presentation(NOW)
    _verify(presentation, expires)  # valid up to and including its exp
    for late in (1, CLOCK_SKEW_S // 2, CLOCK_SKEW_S):
        with pytest.raises(CredentialRejected, match="expired"):
            _verify(presentation, expires + late)


class _Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> float:
        return float(self.now)


def _kept(engine: Engine, nonce: str) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT COUNT(*) FROM used_credential WHERE nonce = :n"), {"n": nonce}
        ).scalar()
    return bool(found)


def test_pruning_keeps_a_use_until_its_credential_cannot_be_accepted(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node")
    clock = _Clock(NOW)
    cache = UsedCredentials(engine, clock)
    expires = NOW + 10
    cache.use("nonce-a", "compute", expires, NOW)
    # another use prunes, just short of expiry + skew: the first use is kept ...
    clock.now = expires + CLOCK_SKEW_S - 1
    cache.use("other-1", "compute", clock.now + 300, clock.now)
    assert _kept(engine, "nonce-a")
    # ... so a replay is refused even if this node's clock stepped back to the expiry
    with pytest.raises(CredentialRejected, match="replayed"):
        cache.use("nonce-a", "compute", expires, expires)
    # once pruned, the credential is past every acceptance
    clock.now = expires + CLOCK_SKEW_S + PRUNE_EVERY_S + 1
    cache.use("other-2", "compute", clock.now + 300, clock.now)
    assert not _kept(engine, "nonce-a")
    with pytest.raises(CredentialRejected, match="expired"):
        cache.use("nonce-a", "compute", expires, clock.now)
    presentation, _ = _presentation(expires - 300)
    with pytest.raises(CredentialRejected, match="expired"):
        _verify(presentation, clock.now)
    engine.dispose()


def test_one_batch_accepts_a_nonce_once(tmp_path: Path) -> None:
    """Concurrent uses share one transaction: the same presentation twice in it, once."""
    engine = make_engine(sqlite_url(tmp_path / "node.db"))
    upgrade(engine, "node")
    cache = UsedCredentials(engine, _Clock(NOW))
    outcomes: list[str] = []

    def use(i: int) -> None:
        try:
            cache.use(f"nonce-{i % 8}", "check", NOW + 300, NOW)
            outcomes.append("ok")
        except CredentialRejected:
            outcomes.append("replayed")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(use, range(64)))
    assert outcomes.count("ok") == 8 and outcomes.count("replayed") == 56
    engine.dispose()


# -- real processes: the trained network the integration tests share ----------------------


def _scoring(network: LocalNetwork) -> scoring_pb2_grpc.ScoringStub:
    creds = PartyCredentials.load(network.pki_dir / "marketer")
    return scoring_pb2_grpc.ScoringStub(
        creds.channel(network.parties["coordinator"].endpoint, COORDINATOR)
    )


def _customer(network: LocalNetwork) -> str:
    """A brand reference every node holds and nobody blocked."""
    coord = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with coord.connect() as conn:
        run = conn.execute(
            text("SELECT alignment_run FROM model_version ORDER BY created_at DESC LIMIT 1")
        ).scalar()
        keys = [
            bytes(r[0])
            for r in conn.execute(
                text(
                    "SELECT row_key FROM aligned_row WHERE run_id = :r GROUP BY row_key "
                    "HAVING COUNT(*) = 4 AND row_key NOT IN (SELECT row_key FROM blocked_row) "
                    "ORDER BY row_key DESC LIMIT 20"
                ),
                {"r": run},
            )
        ]
    coord.dispose()
    label = create_engine(f"sqlite:///{network.node_dir('label') / 'node.db'}")
    with label.connect() as conn:
        for key in keys:
            ref = conn.execute(
                text("SELECT local_ref FROM alignment_row WHERE run_id = :r AND row_key = :k"),
                {"r": run, "k": key},
            ).scalar()
            if ref:
                label.dispose()
                return str(ref)
    raise AssertionError("no customer held by every node")


@pytest.fixture
def scored(trained) -> tuple[LocalNetwork, scoring_pb2.ScoreResponse, dict[str, str]]:  # type: ignore[no-untyped-def]
    """One genuine score; the presentations the coordinator relayed for it."""
    network, _, _ = trained
    key = new_holder_key()
    stub = _scoring(network)
    begun = stub.Begin(
        scoring_pb2.BeginRequest(
            touchpoint="checkout",
            subject=scoring_pb2.Subject(brand_ref=_customer(network)),
            purpose="marketing",
            holder_jwk=holder_public_json(key),
        ),
        timeout=10,
    )
    assert not begun.refusal, begun.refusal
    presentations = {n: present(begun.credential, n, key) for n in begun.nodes}
    answer = stub.Score(
        scoring_pb2.ScoreRequest(
            request_id=begun.request_id,
            presentations=[
                scoring_pb2.Presentation(node=n, sd_jwt=p) for n, p in presentations.items()
            ],
        ),
        timeout=20,
    )
    assert answer.scored, answer.explanation
    return network, answer, presentations


def _embed(
    network: LocalNetwork, node: str, request: scoring_pb2.EmbedRequest
) -> scoring_pb2.EmbedResponse:
    """As the coordinator (the only caller nodes take scoring requests from)."""
    creds = PartyCredentials.load(network.pki_dir / "coordinator")
    with creds.channel(network.parties[node].endpoint, node) as channel:
        reply: scoring_pb2.EmbedResponse = scoring_pb2_grpc.NodeScoringStub(channel).Embed(
            request, timeout=20
        )
        return reply


def _replays(network: LocalNetwork, answer: scoring_pb2.ScoreResponse, sd_jwt: str) -> None:
    for phase in (scoring_pb2.EMBED_PHASE_CHECK, scoring_pb2.EMBED_PHASE_COMPUTE):
        request = scoring_pb2.EmbedRequest(
            request_id=answer.request_id,
            sd_jwt=sd_jwt,
            phase=phase,
            purpose="marketing",
            participants=sorted(answer.sources),
        )
        with pytest.raises(grpc.RpcError) as err:
            _embed(network, "pay", request)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, err.value.details()  # type: ignore[attr-defined]
        assert "replayed" in (err.value.details() or "")  # type: ignore[attr-defined]


def test_a_replayed_presentation_is_refused_even_after_the_node_is_killed_and_restarts(
    scored: tuple[LocalNetwork, scoring_pb2.ScoreResponse, dict[str, str]],
) -> None:
    network, answer, presentations = scored
    assert "pay" in answer.sources
    _replays(network, answer, presentations["pay"])  # the node still running
    listen = network.parties["pay"].endpoint
    network.parties["pay"].kill()  # SIGKILL: no chance to save anything on the way out
    network.start_node("pay", "feature", listen=listen).wait_ready()
    _replays(network, answer, presentations["pay"])  # and the node restarted
    with create_engine(f"sqlite:///{network.node_dir('pay') / 'node.db'}").connect() as conn:
        uses = conn.execute(
            text("SELECT COUNT(*) FROM data_use WHERE session = :s"), {"s": answer.request_id}
        ).scalar()
    assert uses == 1  # the genuine use only
