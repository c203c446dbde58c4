"""Consent proofs end to end over the shared trained network's real processes (issue 20).

A customer's wallet asks each channel holding them for a credential (Consent.IssueCredential
on the channel's node, called with the channel's own certificate), a marketer's touchpoint
scores them with the wallet's proofs, each node checks its proof before its gate and puts it on
the ledger with the use; the same proofs replayed in a second request are refused as replays; a node restarted with
--require-consent-proofs refuses a request without one;
`accord audit violations` verifies every proof from the channels' published keys.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from accord.consent.credential import Presentation as ConsentPresentation
from accord.consent.wire import consent_proof_message
from accord.credentials import holder_public_json, new_holder_key, present
from accord.launcher import LocalNetwork
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import consent_pb2, consent_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.touchpoint import ask, subject
from accord.wallet import holder, store

FEATURES = ("pay", "shop", "social")


def _customer(network: LocalNetwork) -> tuple[str, dict[str, str]]:
    """A brand reference every node holds, unblocked, whose consent at every feature channel
    covers marketing; and each feature channel's own reference to them."""
    coord = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with coord.connect() as conn:
        run = str(
            conn.execute(
                text("SELECT alignment_run FROM model_version ORDER BY created_at DESC LIMIT 1")
            ).scalar()
        )
        rows: dict[bytes, dict[str, bytes]] = {}
        for key, node, theirs in conn.execute(
            text(
                "SELECT row_key, node, node_row_key FROM aligned_row WHERE run_id = :r "
                "AND row_key NOT IN (SELECT row_key FROM blocked_row)"
            ),
            {"r": run},
        ):
            rows.setdefault(bytes(key), {})[str(node)] = bytes(theirs)
    coord.dispose()
    engines = {
        c: create_engine(f"sqlite:///{network.node_dir(c) / 'node.db'}")
        for c in ("label", *FEATURES)
    }
    candidates = sorted(k for k, held in rows.items() if len(held) == 4)
    random.Random(20).shuffle(candidates)
    try:
        for key in candidates:
            refs = {}
            for channel, engine in engines.items():
                with engine.connect() as conn:
                    refs[channel] = str(
                        conn.execute(
                            text(
                                "SELECT local_ref FROM alignment_row "
                                "WHERE run_id = :r AND row_key = :k"
                            ),
                            {"r": run, "k": rows[key][channel]},
                        ).scalar()
                    )
                    consented = conn.execute(
                        text(
                            "SELECT 1 FROM consent_record WHERE local_ref = :l AND "
                            "status = 'granted' AND purposes LIKE '%\"marketing\"%'"
                        ),
                        {"l": refs[channel]},
                    ).first()
                if channel != "label" and consented is None:
                    break
            else:
                return refs.pop("label"), refs
    finally:
        for engine in engines.values():
            engine.dispose()
    raise AssertionError("no customer consented to marketing at every feature channel")


def _accord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )


def _audit(network: LocalNetwork, *args: str) -> subprocess.CompletedProcess[str]:
    return _accord(
        "audit",
        *args,
        "--coordinator",
        network.parties["coordinator"].endpoint,
        "--pki",
        str(network.pki_dir / "auditor"),
    )


def test_a_customer_proves_consent_at_each_use_and_the_auditor_checks_it(  # type: ignore[no-untyped-def]
    trained, tmp_path: Path
) -> None:
    network, _, _ = trained
    brand_ref, refs = _customer(network)
    # pay's through the CLI, as a customer's app and the channel's systems would
    path = tmp_path / "wallet.json"
    assert _accord("wallet", "init", "--wallet", str(path)).returncode == 0
    asked_cli = _accord("wallet", "request", "--wallet", str(path), "--channel", "pay")
    assert asked_cli.returncode == 0, asked_cli.stderr
    (tmp_path / "request.json").write_text(asked_cli.stdout)
    issued_cli = _accord(
        "consent",
        "issue-credential",
        "--ref",
        refs["pay"],
        "--request",
        str(tmp_path / "request.json"),
        "--node",
        network.parties["pay"].endpoint,
        "--pki",
        str(network.pki_dir / "pay"),
    )
    assert issued_cli.returncode == 0, issued_cli.stderr
    (tmp_path / "issued.json").write_text(issued_cli.stdout)
    kept = _accord(
        "wallet", "accept", "--wallet", str(path), "--credential", str(tmp_path / "issued.json")
    )
    assert kept.returncode == 0 and "kept the credential from pay" in kept.stdout, kept.stderr
    wallet = store.load(path)
    for channel in ("shop", "social"):  # the others through the node's gRPC service
        asked = holder.request(wallet, channel)
        creds = PartyCredentials.load(network.pki_dir / channel)
        with creds.channel(network.parties[channel].endpoint, channel) as link:
            issued = consent_pb2_grpc.ConsentStub(link).IssueCredential(
                consent_pb2.IssueCredentialRequest(
                    local_ref=refs[channel], commitment=asked.commitment
                ),
                timeout=30,
            )
        holder.accept(
            wallet, asked.request_id, issued.public_key, issued.signature, list(issued.messages)
        )
    covered = sorted(refs)

    made: dict[str, ConsentPresentation] = {}
    prove = holder.prover(wallet, int(time.time()))

    def recording(node: str, nonce: str, purpose: str) -> ConsentPresentation | None:
        shown = prove(node, nonce, purpose)
        if shown is not None:
            made[node] = shown
        return shown

    marketer = PartyCredentials.load(network.pki_dir / "marketer")
    with marketer.channel(network.parties["coordinator"].endpoint, COORDINATOR) as link:
        stub = scoring_pb2_grpc.ScoringStub(link)
        answer = ask(
            stub, "checkout", subject(brand_ref), "marketing", timeout_s=30, prover=recording
        )
        assert answer.scored, answer.explanation
        assert sorted(made) == sorted(covered) and set(covered) <= set(answer.sources)

        # a second request carrying the first one's proofs: each node names the replay
        key = new_holder_key()
        begun = stub.Begin(
            scoring_pb2.BeginRequest(
                touchpoint="checkout",
                subject=subject(brand_ref),
                purpose="marketing",
                holder_jwk=holder_public_json(key),
            ),
            timeout=30,
        )
        replayed = stub.Score(
            scoring_pb2.ScoreRequest(
                request_id=begun.request_id,
                presentations=[
                    scoring_pb2.Presentation(
                        node=n,
                        sd_jwt=present(begun.credential, n, key),
                        consent_proof=consent_proof_message(made[n]) if n in made else None,
                    )
                    for n in begun.nodes
                ],
            ),
            timeout=30,
        )
    assert not replayed.scored
    for n in covered:
        assert f"{n} (consent proof refused (replayed))" in replayed.explanation, (
            replayed.explanation
        )

    # social now requires proofs: a request without any is refused there as "missing"
    listen = network.parties["social"].endpoint
    network.parties["social"].terminate()
    network.start_node(
        "social", "feature", listen=listen, extra=["--require-consent-proofs"]
    ).wait_ready(timeout_s=120)
    try:
        with marketer.channel(network.parties["coordinator"].endpoint, COORDINATOR) as link:
            stub = scoring_pb2_grpc.ScoringStub(link)
            key = new_holder_key()
            begun = stub.Begin(
                scoring_pb2.BeginRequest(
                    touchpoint="checkout",
                    subject=subject(brand_ref),
                    purpose="marketing",
                    holder_jwk=holder_public_json(key),
                ),
                timeout=30,
            )
            # as the coordinator relays it, without its 1 s deadline (a node just restarted
            # loads its model first)
            coordinator = PartyCredentials.load(network.pki_dir / "coordinator")
            with coordinator.channel(listen, "social") as to_social:
                with pytest.raises(grpc.RpcError) as err:
                    scoring_pb2_grpc.NodeScoringStub(to_social).Embed(
                        scoring_pb2.EmbedRequest(
                            request_id=begun.request_id,
                            sd_jwt=present(begun.credential, "social", key),
                            phase=scoring_pb2.EMBED_PHASE_CHECK,
                            purpose="marketing",
                        ),
                        timeout=120,
                    )
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
            assert "consent proof refused (missing)" in (err.value.details() or "")  # type: ignore[attr-defined]
            # and through the touchpoint, once social answers in time
            for _ in range(10):
                bare = ask(stub, "checkout", subject(brand_ref), "marketing", timeout_s=30)
                if "social (missed the deadline)" not in bare.explanation:
                    break
                time.sleep(2)
        assert "social (consent proof refused (missing))" in bare.explanation, bare.explanation
        assert "social" not in bare.sources
    finally:  # the shared network goes on as it was
        network.parties["social"].terminate()
        network.start_node("social", "feature", listen=listen).wait_ready(timeout_s=120)

    # the auditor: every proof on the ledger verifies from the channels' published keys
    note = tmp_path / "checkpoint.note"
    give_up = time.monotonic() + 60
    while True:
        saved = _audit(network, "checkpoint", "--save", str(note))
        assert saved.returncode == 0, saved.stderr
        checked = _audit(network, "violations", "--checkpoint", str(note))
        summary = re.search(
            r"consent proofs: (\d+) verified, (\d+) failed, \d+ uses without a proof; "
            r"\d+ uses refused(?: \(([^)]*)\))?",
            " ".join(checked.stdout.split()),
        )
        assert summary, checked.stdout + checked.stderr
        refused = dict(
            (r.split()[0], int(r.split()[1])) for r in (summary[3] or "").split(", ") if r
        )
        logged = refused.get("replayed", 0) >= len(covered) and refused.get("missing", 0) >= 1
        if logged or time.monotonic() > give_up:
            break
        time.sleep(1)
    assert int(summary[1]) >= len(covered) and int(summary[2]) == 0, checked.stdout
    assert refused.get("replayed", 0) >= len(covered), checked.stdout
    assert refused.get("missing", 0) >= 1, checked.stdout
