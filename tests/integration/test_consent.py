"""Consent through real node processes: the channel's CLI, the ledger, export, erasure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.consent.proofs import ConsentNotValid, verify_consent_proof
from accord.crypto.merkle import InclusionProof
from accord.data.channel_file import read_channel_table
from accord.launcher import LocalNetwork
from accord.pki_layout import load_coordinator_verifier
from accord.proto.v1 import consent_pb2, consent_pb2_grpc, ledger_pb2, ledger_pb2_grpc
from accord.rpc.tls import PartyCredentials

CHECKPOINT_LAG_S = 0.6  # one publication interval and a margin


def cli(network: LocalNetwork, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args], capture_output=True, text=True, timeout=120
    )


def node_args(network: LocalNetwork, channel: str) -> list[str]:
    return ["--node", network.parties[channel].endpoint, "--pki", str(network.pki_dir / channel)]


def checkpoint(network: LocalNetwork) -> str:
    creds = PartyCredentials.load(network.pki_dir / "auditor")
    with creds.channel(network.parties["coordinator"].endpoint, "coordinator") as ch:
        return (
            ledger_pb2_grpc.LedgerStub(ch)
            .GetCheckpoint(ledger_pb2.GetCheckpointRequest(), timeout=5)
            .note
        )


def settled_checkpoint(network: LocalNetwork) -> str:
    """The checkpoint once the publisher has caught up with every append made so far.

    Checkpoints trail appends by up to one publication interval (0.5 s), so an earlier
    bulk import can still be landing in the next checkpoint.
    """
    note = checkpoint(network)
    while True:
        time.sleep(CHECKPOINT_LAG_S)
        again = checkpoint(network)
        if again == note:
            return note
        note = again


def refs(network: LocalNetwork, channel: str) -> list[str]:
    return read_channel_table(network.workdir / "data" / f"{channel}.csv").refs


def test_grant_show_export_revoke_erase(network: LocalNetwork, tmp_path: Path) -> None:
    ref = refs(network, "social")[3]
    granted = cli(
        network,
        "consent",
        "grant",
        "--ref",
        ref,
        "--purposes",
        "marketing,model-training",
        "--expires",
        "2027-12-31",
        "--notice",
        "2026-09",
        *node_args(network, "social"),
    )
    assert granted.returncode == 0, granted.stderr
    shown = cli(network, "consent", "show", "--ref", ref, *node_args(network, "social"))
    assert "granted" in shown.stdout and "marketing" in shown.stdout
    time.sleep(0.7)  # a checkpoint covers the grant
    out = tmp_path / "export.json"
    exported = cli(
        network, "subject", "export", "--ref", ref, "--out", str(out), *node_args(network, "social")
    )
    assert exported.returncode == 0, exported.stderr
    doc = json.loads(out.read_text())
    assert doc["data"]["localRef"] == ref and doc["opening"]["localRef"] == ref
    verifier = load_coordinator_verifier(network.pki_dir / "social")
    for proof in doc["ledger"]["inclusion"].values():
        InclusionProof.from_json(proof).verify()
    (status,) = doc["ledger"]["consentStatus"]
    assert verify_consent_proof(status, verifier).status.purposes == ("marketing", "model-training")
    proof_file = tmp_path / "status.json"
    proof_file.write_text(json.dumps(status))
    offline = cli(
        network,
        "audit",
        "consent",
        "--proof",
        str(proof_file),
        "--pki",
        str(network.pki_dir / "auditor"),
    )
    assert offline.returncode == 0, offline.stderr

    assert (
        cli(
            network,
            "audit",
            "checkpoint",
            "--save",
            str(tmp_path / "before.note"),
            "--coordinator",
            network.parties["coordinator"].endpoint,
            "--pki",
            str(network.pki_dir / "auditor"),
        ).returncode
        == 0
    )
    revoked = cli(network, "consent", "revoke", "--ref", ref, *node_args(network, "social"))
    assert revoked.returncode == 0, revoked.stderr
    time.sleep(0.7)
    fetched = cli(
        network,
        "audit",
        "consent-proof",
        "--consent",
        status["consent"],
        "--out",
        str(tmp_path / "after.json"),
        "--coordinator",
        network.parties["coordinator"].endpoint,
        "--pki",
        str(network.pki_dir / "auditor"),
    )
    assert fetched.returncode == 0, fetched.stderr
    with pytest.raises(ConsentNotValid, match="revoked"):
        verify_consent_proof(json.loads((tmp_path / "after.json").read_text()), verifier)
    refused = cli(
        network,
        "audit",
        "consent",
        "--proof",
        str(tmp_path / "after.json"),
        "--pki",
        str(network.pki_dir / "auditor"),
    )
    assert refused.returncode != 0 and "revoked" in refused.stderr

    erased = cli(network, "subject", "erase", "--ref", ref, *node_args(network, "social"))
    assert erased.returncode == 0, erased.stderr
    assert "salt destroyed" in erased.stdout
    gone = cli(
        network,
        "subject",
        "export",
        "--ref",
        ref,
        "--out",
        str(tmp_path / "gone.json"),
        *node_args(network, "social"),
    )
    assert gone.returncode != 0 and "holds nothing" in gone.stderr
    time.sleep(0.7)
    verified = cli(
        network,
        "audit",
        "verify",
        "--old",
        str(tmp_path / "before.note"),
        "--coordinator",
        network.parties["coordinator"].endpoint,
        "--pki",
        str(network.pki_dir / "auditor"),
    )
    assert verified.returncode == 0, verified.stderr


def test_only_the_channel_itself_manages_its_consents(network: LocalNetwork) -> None:
    creds = PartyCredentials.load(network.pki_dir / "shop")
    with creds.channel(network.parties["pay"].endpoint, "pay") as ch:
        with pytest.raises(grpc.RpcError) as err:
            consent_pb2_grpc.ConsentStub(ch).Show(
                consent_pb2.SubjectRequest(local_ref="x"), timeout=5
            )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_consent_import_from_file(network: LocalNetwork) -> None:
    result = cli(
        network,
        "consent",
        "import",
        "--file",
        str(network.workdir / "data" / "shop.consents.csv"),
        *node_args(network, "shop"),
    )
    assert result.returncode == 0, result.stderr
    assert "consents recorded at shop" in result.stdout


text_or_junk = st.one_of(
    st.text(max_size=40), st.sampled_from(["marketing", "", "model-training", "x" * 200])
)


@pytest.fixture
def quiet_ledger(network: LocalNetwork) -> None:
    """Once per test (not per example): let earlier tests' appends reach a checkpoint."""
    settled_checkpoint(network)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    purposes=st.lists(text_or_junk, max_size=4),
    notice=text_or_junk,
    method=text_or_junk,
    expires=st.integers(-(2**40), 2**40),
    ref=text_or_junk,
)
def test_malformed_grants_are_invalid_and_change_nothing(
    network: LocalNetwork,
    quiet_ledger: None,
    purposes: list[str],
    notice: str,
    method: str,
    expires: int,
    ref: str,
) -> None:
    valid_ref = refs(network, "label")[0]
    terms = consent_pb2.ConsentTerms(
        controller="label",
        purposes=purposes,
        data_categories=["outcomes"],
        recipients=["accord-network"],
        processing=["use"],
        legal_basis="consent",
        jurisdiction="TW",
        notice_version=notice,
        collection_method=method,
        given_at=int(time.time()),
        expires_at=expires,
    )
    before = checkpoint(network)
    creds = PartyCredentials.load(network.pki_dir / "label")
    with creds.channel(network.parties["label"].endpoint, "label") as ch:
        stub = consent_pb2_grpc.ConsentStub(ch)
        shown_before = stub.Show(
            consent_pb2.SubjectRequest(local_ref=valid_ref), timeout=5
        ).records_json
        try:
            stub.Grant(
                consent_pb2.GrantConsentRequest(
                    grants=[consent_pb2.ConsentGrant(local_ref=ref or valid_ref, terms=terms)]
                ),
                timeout=10,
            )
        except grpc.RpcError as err:
            assert err.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), err  # type: ignore[attr-defined]
            assert (
                stub.Show(consent_pb2.SubjectRequest(local_ref=valid_ref), timeout=5).records_json
                == shown_before
            )
            time.sleep(CHECKPOINT_LAG_S)  # an append would be in the checkpoint by now
            assert checkpoint(network).split("\n")[1] == before.split("\n")[1]
            return
    # accepted: only when every field happened to be valid
    assert set(purposes) <= {"marketing", "model-training"} and purposes
    settled_checkpoint(network)  # the next example starts from a checkpoint covering this grant
