"""Consent proofs end to end over the shared trained network's real processes (issue 20).

A customer's wallet asks each channel holding them for a credential (Consent.IssueCredential
on the channel's node, called with the channel's own certificate), a marketer's touchpoint
scores them with the wallet's proofs, each node checks its proof before its gate and puts it on
the ledger with the use; the same proofs replayed in a second request are refused as replays;
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

from sqlalchemy import create_engine, text

from accord.consent.credential import Presentation as ConsentPresentation
from accord.consent.wire import consent_proof_message
from accord.credentials import holder_public_json, new_holder_key, present
from accord.launcher import LocalNetwork
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import consent_pb2, consent_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.touchpoint import ask, subject
from accord.wallet import holder
from accord.wallet.store import Wallet

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


def _audit(network: LocalNetwork, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "audit",
            *args,
            "--coordinator",
            network.parties["coordinator"].endpoint,
            "--pki",
            str(network.pki_dir / "auditor"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_a_customer_proves_consent_at_each_use_and_the_auditor_checks_it(  # type: ignore[no-untyped-def]
    trained, tmp_path: Path
) -> None:
    network, _, _ = trained
    brand_ref, refs = _customer(network)
    wallet = Wallet(os.urandom(32).hex())
    for channel, ref in refs.items():  # the channel's own systems pass the request on
        asked = holder.request(wallet, channel)
        creds = PartyCredentials.load(network.pki_dir / channel)
        with creds.channel(network.parties[channel].endpoint, channel) as link:
            issued = consent_pb2_grpc.ConsentStub(link).IssueCredential(
                consent_pb2.IssueCredentialRequest(local_ref=ref, commitment=asked.commitment),
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
        if refused.get("replayed", 0) >= len(covered) or time.monotonic() > give_up:
            break
        time.sleep(1)
    assert int(summary[1]) >= len(covered) and int(summary[2]) == 0, checked.stdout
    assert refused.get("replayed", 0) >= len(covered), checked.stdout
