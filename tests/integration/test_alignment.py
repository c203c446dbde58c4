"""Alignment across real processes: what crosses the wire, consent filtering, hostile peers."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from identifier_scan import needles, scan
from sqlalchemy import create_engine, inspect, text

from accord.crypto.psi import (
    LOW_ORDER_U,
    hash_to_points,
)
from accord.data.consents import read_decisions
from accord.launcher import LocalNetwork
from accord.node.alignment import TICKET_DOMAIN
from accord.pki_layout import load_coordinator_signer
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.rpc.wire_log import read_records

ROLES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args], capture_output=True, text=True, timeout=300
    )


def test_no_identifier_or_its_hash_crosses_the_wire_or_reaches_the_coordinator(aligned) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    wanted = needles(network.workdir)
    records = [
        (method, data)
        for path in (network.workdir / "wire").glob("*.wire")
        for method, _, data in read_records(path)
        # the channel's own systems talking to its own node stay inside one domain
        if not method.startswith("/accord.v1.Consent/")
    ]
    methods = {m for m, _ in records}
    assert "/accord.v1.NodeAlignment/Psi" in methods and "/accord.v1.Ledger/Append" in methods
    assert scan(b"\x00".join(d for _, d in records), wanted) == []
    engine = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    dump = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608 - table names from the schema
                dump.extend(v if isinstance(v, bytes) else str(v).encode() for v in row)
    assert scan(b"\x00".join(dump), wanted) == []


def test_customers_without_training_consent_never_enter(aligned) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    for channel in ROLES:
        allowed = {
            d.local_ref
            for d in read_decisions(network.workdir / "data" / f"{channel}.consents.csv")
            if "model-training" in d.purposes
        }
        engine = create_engine(f"sqlite:///{network.node_dir(channel) / 'node.db'}")
        with engine.connect() as conn:
            refs = {r[0] for r in conn.execute(text("SELECT local_ref FROM alignment_row"))}
        assert refs, channel
        assert refs <= allowed, f"{channel}: {len(refs - allowed)} rows without training consent"


def test_align_prints_sizes_and_coverage(aligned) -> None:  # type: ignore[no-untyped-def]
    _, info = aligned
    for channel in ("pay", "shop", "social"):
        assert channel in info["stdout"]
    assert "%" in info["stdout"] and "aligned rows" in info["stdout"]


def _ticket(network: LocalNetwork, run_id: str) -> alignment_pb2.SignedTicket:
    signer = load_coordinator_signer(network.pki_dir / "coordinator")
    body = alignment_pb2.AlignmentTicket(
        run_id=run_id,
        label_node="label",
        channels=["pay"],
        identifier=alignment_pb2.IDENTIFIER_KIND_PHONE,
        purpose="model-training",
        expires_at=int(time.time()) + 600,
    ).SerializeToString()
    return alignment_pb2.SignedTicket(ticket=body, signature=signer.sign(TICKET_DOMAIN + body))


def _psi(
    network: LocalNetwork, party: str, messages: list[alignment_pb2.PsiMessage]
) -> grpc.StatusCode:
    creds = PartyCredentials.load(network.pki_dir / party)
    with creds.channel(network.parties["label"].endpoint, "label") as ch:
        try:
            for _ in alignment_pb2_grpc.NodeAlignmentStub(ch).Psi(iter(messages), timeout=20):
                pass
        except grpc.RpcError as err:
            return err.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


def _valid_points(n: int) -> bytes:
    return b"".join(hash_to_points([secrets.token_bytes(64) for _ in range(n)]))


@pytest.mark.parametrize(
    ("party", "body", "code"),
    [
        (
            "auditor",
            lambda t: [
                alignment_pb2.PsiMessage(
                    hello=alignment_pb2.PsiHello(ticket=t, channel="auditor", count=1)
                )
            ],
            "PERMISSION_DENIED",
        ),
        (
            "shop",
            lambda t: [
                alignment_pb2.PsiMessage(
                    hello=alignment_pb2.PsiHello(ticket=t, channel="shop", count=1)
                )
            ],
            "PERMISSION_DENIED",
        ),
        (
            "pay",
            lambda t: [
                alignment_pb2.PsiMessage(
                    hello=alignment_pb2.PsiHello(ticket=t, channel="pay", count=1)
                ),
                alignment_pb2.PsiMessage(
                    blinded=alignment_pb2.PointChunk(offset=0, points=b"\x01" * 31, last=True)
                ),
            ],
            "INVALID_ARGUMENT",
        ),
        (
            "pay",
            lambda t: [
                alignment_pb2.PsiMessage(
                    hello=alignment_pb2.PsiHello(ticket=t, channel="pay", count=2)
                ),
                alignment_pb2.PsiMessage(
                    blinded=alignment_pb2.PointChunk(
                        offset=0, points=sorted(LOW_ORDER_U)[0] + _valid_points(1), last=True
                    )
                ),
            ],
            "INVALID_ARGUMENT",
        ),
        (
            "pay",
            lambda t: [
                alignment_pb2.PsiMessage(
                    hello=alignment_pb2.PsiHello(ticket=t, channel="pay", count=2)
                ),
                alignment_pb2.PsiMessage(
                    blinded=alignment_pb2.PointChunk(
                        offset=0, points=_valid_points(1) * 2, last=True
                    )
                ),
            ],
            "INVALID_ARGUMENT",
        ),
        (
            "pay",
            lambda t: [
                alignment_pb2.PsiMessage(
                    hello=alignment_pb2.PsiHello(ticket=t, channel="pay", count=5)
                ),
                alignment_pb2.PsiMessage(
                    blinded=alignment_pb2.PointChunk(offset=0, points=_valid_points(2), last=False)
                ),
            ],
            "INVALID_ARGUMENT",
        ),
    ],
    ids=[
        "unregistered-party",
        "channel-not-in-run",
        "wrong-length",
        "invalid-point",
        "duplicates",
        "stops-half-way",
    ],
)
def test_hostile_psi_peers_are_refused_and_leave_nothing(
    aligned, party: str, body, code: str
) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    run_id = secrets.token_hex(8)
    coordinator = PartyCredentials.load(network.pki_dir / "coordinator")
    ticket = _ticket(network, run_id)
    with coordinator.channel(network.parties["label"].endpoint, "label") as ch:
        stub = alignment_pb2_grpc.NodeAlignmentStub(ch)
        stub.Prepare(alignment_pb2.PrepareRequest(ticket=ticket), timeout=60)
        assert _psi(network, party, body(ticket)).name == code
        with pytest.raises(grpc.RpcError) as err:  # no partial alignment: nothing to report
            stub.Report(alignment_pb2.ReportRequest(run_id=run_id, channel="pay"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
        stub.Finish(alignment_pb2.FinishRequest(run_id=run_id, commit=False), timeout=10)
    engine = create_engine(f"sqlite:///{network.node_dir('label') / 'node.db'}")
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT COUNT(*) FROM alignment_row WHERE run_id = :r"), {"r": run_id}
            ).scalar()
            == 0
        )


def test_a_forged_ticket_is_refused(aligned) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    ticket = _ticket(network, "forged")
    ticket.signature = bytes(64)
    assert (
        _psi(
            network,
            "pay",
            [
                alignment_pb2.PsiMessage(
                    hello=alignment_pb2.PsiHello(ticket=ticket, channel="pay", count=1)
                )
            ],
        ).name
        == "PERMISSION_DENIED"
    )
    as_node = PartyCredentials.load(network.pki_dir / "pay")
    with as_node.channel(network.parties["label"].endpoint, "label") as ch:
        with pytest.raises(grpc.RpcError) as err:
            alignment_pb2_grpc.NodeAlignmentStub(ch).Prepare(
                alignment_pb2.PrepareRequest(ticket=_ticket(network, "x")), timeout=10
            )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]


def test_export_lists_every_use_with_proofs(aligned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    engine = create_engine(f"sqlite:///{network.node_dir('pay') / 'node.db'}")
    with engine.connect() as conn:
        ref = conn.execute(text("SELECT local_ref FROM alignment_row LIMIT 1")).scalar()
    time.sleep(0.7)
    out = tmp_path / "export.json"
    result = cli(
        "subject",
        "export",
        "--ref",
        str(ref),
        "--out",
        str(out),
        "--node",
        network.parties["pay"].endpoint,
        "--pki",
        str(network.pki_dir / "pay"),
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(out.read_text())
    assert [u["purpose"] for u in doc["uses"]] == ["model-training"]
    from accord.crypto.merkle import InclusionProof

    use_index = doc["uses"][0]["ledgerIndex"]
    InclusionProof.from_json(doc["ledger"]["inclusion"][str(use_index)]).verify()
