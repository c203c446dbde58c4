"""Many commits between two checkpoints must not break consent proofs (issue 16, item 8).

``GetConsentStatus`` proves a consent against the latest signed checkpoint, with the status map
as of that checkpoint's size. The coordinator kept the maps of its last 256 commits only: any
node appending one entry per request could push the published checkpoint's map out of that
window (under load, or on purpose), and every node's and auditor's ``GetConsentStatus`` then
failed (INVALID_ARGUMENT, "no status-map snapshot") until the next checkpoint; the node outbox,
which asks it before resending, then resent. Now the checkpointer keeps the map it signed.

A real coordinator (its gRPC server, mTLS, admission) and a node's certificate; the timer that
publishes checkpoints is set far apart so the commits all fall between two of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import grpc
import pytest
from helpers import grant_event, make_pki

from accord.consent.proofs import ConsentNotValid, proof_document, verify_consent_proof
from accord.coordinator.app import Coordinator, CoordinatorConfig, start_coordinator
from accord.coordinator.ledger.consent_index import SNAPSHOTS_KEPT
from accord.crypto.statusmap import StatusProof
from accord.pki_layout import COORDINATOR, load_coordinator_verifier
from accord.proto.v1 import ledger_pb2, ledger_pb2_grpc
from accord.rpc.tls import PartyCredentials

COMMITS = SNAPSHOTS_KEPT + 44  # more than the coordinator ever kept between two checkpoints


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[tuple[Coordinator, Path]]:
    pki = make_pki(tmp_path / "pki")
    running = start_coordinator(
        CoordinatorConfig(
            data_dir=tmp_path / "coordinator",
            pki_dir=pki / "coordinator",
            listen="127.0.0.1:0",
            checkpoint_interval_s=3600.0,
        )
    )
    yield running, pki
    running.stop()


def _consent(i: int) -> bytes:
    return sha256(f"consent-{i}".encode()).digest()  # as helpers.grant_event derives it


def test_more_commits_than_kept_between_two_checkpoints_still_prove(
    coordinator: tuple[Coordinator, Path],
) -> None:
    running, pki = coordinator
    verifier = load_coordinator_verifier(pki / "pay")
    creds = PartyCredentials.load(pki / "pay")
    with creds.channel(f"127.0.0.1:{running.server.port}", COORDINATOR) as channel:
        ledger = ledger_pb2_grpc.LedgerStub(channel)
        ledger.Append(ledger_pb2.AppendRequest(entries=[grant_event(0)]), timeout=30)
        # the checkpointer's tick (its timer is an hour apart here)
        published = running.ledger.checkpointer.publish()
        # one entry per request, so each is its own commit
        for i in range(1, COMMITS + 1):
            ledger.Append(ledger_pb2.AppendRequest(entries=[grant_event(i)]), timeout=30)

        def status(i: int) -> ledger_pb2.ConsentStatusProof:
            reply: ledger_pb2.ConsentStatusProof = ledger.GetConsentStatus(
                ledger_pb2.GetConsentStatusRequest(consent=_consent(i)), timeout=30
            )
            return reply

        try:
            before = status(0)
        except grpc.RpcError as err:  # what it did: no map for the checkpoint it signed
            pytest.fail(f"GetConsentStatus failed: {err.code()} {err.details()}")
        assert before.checkpoint.note == published.note

        def document(reply: ledger_pb2.ConsentStatusProof) -> dict[str, object]:
            proof = StatusProof(
                tuple(bytes(s) for s in reply.siblings),
                bytes(reply.terminal_key) or None,
                bytes(reply.terminal_value_hash) or None,
            )
            return proof_document(
                reply.checkpoint.note, bytes(reply.consent), reply.status_json, proof
            )

        # granted as of the checkpoint, and provably so against its signed map root
        valid = verify_consent_proof(document(before), verifier)
        assert valid.status.status == "granted" and valid.checkpoint.size == published.size
        # a consent appended after it: provably absent as of that checkpoint
        after = status(COMMITS)
        assert not after.status_json
        with pytest.raises(ConsentNotValid, match="not on the ledger"):
            verify_consent_proof(document(after), verifier)
        # and once the next checkpoint is out, present
        running.ledger.checkpointer.publish()
        assert verify_consent_proof(document(status(COMMITS)), verifier).status.status == (
            "granted"
        )
