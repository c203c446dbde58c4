"""`accord consent` and `accord subject`: a channel acting for its customers, through its node."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from accord.data.consents import read_decisions
from accord.errors import AccordError, InvalidInput
from accord.node.consent import default_terms, parse_expiry
from accord.node.consent_server import terms_to_proto
from accord.proto.v1 import consent_pb2, consent_pb2_grpc
from accord.rpc.client import describe_rpc_error
from accord.rpc.tls import PartyCredentials

consent_app = typer.Typer(
    help="Record, revoke and show customers' consent at your node.", no_args_is_help=True
)
subject_app = typer.Typer(
    help="A customer's rights at your node: export and erasure.", no_args_is_help=True
)

NODE_OPT = typer.Option(..., "--node", help="Your node's host:port.")
PKI_OPT = typer.Option(..., "--pki", help="Your channel's folder from `accord pki init`.")
REF_OPT = typer.Option(..., "--ref", help="The customer's reference at your channel.")
GRANT_BATCH = 1000


@contextmanager
def consent_stub(node: str, pki: Path) -> Iterator[consent_pb2_grpc.ConsentStub]:
    credentials = PartyCredentials.load(pki)
    with credentials.channel(node, credentials.party) as channel:
        try:
            yield consent_pb2_grpc.ConsentStub(channel)
        except grpc.RpcError as err:
            raise AccordError(describe_rpc_error(err, f"node at {node}")) from err


def _receipts(receipts: list[consent_pb2.ConsentReceipt], title: str) -> None:
    table = Table(title=title)
    for header in ("record", "customer", "status", "ledger index"):
        table.add_column(header)
    for r in receipts:
        table.add_row(
            r.record_id,
            r.local_ref,
            r.status,
            str(r.ledger_index)
            if r.HasField("ledger_index")
            else ("pending" if r.ledger_pending else "-"),
        )
    Console().print(table)
    pending = sum(1 for r in receipts if r.ledger_pending)
    if pending:
        Console().print(
            f"{pending} ledger append(s) pending: recorded at the node, which delivers them "
            "when the coordinator is reachable (see `accord node status`)"
        )


@consent_app.command("grant")
def grant(
    ref: str = REF_OPT,
    purposes: str = typer.Option(
        ..., "--purposes", help="Comma-separated, e.g. model-training,marketing."
    ),
    expires: str = typer.Option(..., "--expires", help="ISO date, e.g. 2027-06-30."),
    notice: str = typer.Option(..., "--notice", help="The privacy-notice version shown."),
    method: str = typer.Option("web-form", "--method", help="How consent was collected."),
    jurisdiction: str = typer.Option("TW", "--jurisdiction", help="Region code."),
    node: str = NODE_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Record one customer's consent; its commitment goes on the ledger."""
    now = int(time.time())
    base = default_terms(
        [p.strip() for p in purposes.split(",") if p.strip()],
        controller=PartyCredentials.load(pki).party,
        now=now,
    )
    terms = terms_to_proto(base)
    terms.expires_at = parse_expiry(expires)
    terms.notice_version, terms.collection_method, terms.jurisdiction = notice, method, jurisdiction
    with consent_stub(node, pki) as stub:
        reply = stub.Grant(
            consent_pb2.GrantConsentRequest(
                grants=[consent_pb2.ConsentGrant(local_ref=ref, terms=terms)]
            ),
            timeout=30,
        )
    _receipts(list(reply.receipts), "Consent recorded")


def import_consents(node: str, pki: Path, file: Path, progress: Progress | None = None) -> int:
    """Record every consent decision of ``file`` at the node (in batches); return the count."""
    decisions = read_decisions(file)
    party = PartyCredentials.load(pki).party
    now = int(time.time())
    done = 0
    with consent_stub(node, pki) as stub:
        task = progress.add_task(f"consents at {party}", total=len(decisions)) if progress else None
        for start in range(0, len(decisions), GRANT_BATCH):
            grants = []
            for d in decisions[start : start + GRANT_BATCH]:
                terms = terms_to_proto(default_terms(d.purposes, controller=party, now=now))
                terms.notice_version, terms.collection_method, terms.jurisdiction = (
                    d.notice_version,
                    d.collection_method,
                    d.jurisdiction,
                )
                terms.expires_at = int(
                    dt.datetime.combine(d.expires, dt.time(), dt.UTC).timestamp()
                )
                grants.append(consent_pb2.ConsentGrant(local_ref=d.local_ref, terms=terms))
            reply = stub.Grant(consent_pb2.GrantConsentRequest(grants=grants), timeout=120)
            done += len(reply.receipts)
            if progress is not None and task is not None:
                progress.advance(task, len(grants))
    return done


@consent_app.command("import")
def import_(
    file: Path = typer.Option(..., "--file", help="<channel>.consents.csv"),
    node: str = NODE_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Record every consent decision of FILE (in batches), with a progress bar."""
    with Progress() as progress:
        done = import_consents(node, pki, file, progress)
    party = PartyCredentials.load(pki).party
    Console().print(f"{done} consents recorded at {party}, each committed to the ledger")


@consent_app.command("revoke")
def revoke(
    ref: str = REF_OPT,
    record: list[str] = typer.Option([], "--record", help="Only these record ids (default: all)."),
    node: str = NODE_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Revoke consent: uses stop at once, then the revocation goes on the ledger."""
    with consent_stub(node, pki) as stub:
        reply = stub.Revoke(
            consent_pb2.RevokeConsentRequest(local_ref=ref, record_ids=record), timeout=30
        )
    if not reply.receipts:
        raise InvalidInput(f"{ref!r} has no active consent to revoke")
    _receipts(list(reply.receipts), "Consent revoked")


@consent_app.command("issue-credential")
def issue_credential(
    ref: str = REF_OPT,
    node: str = NODE_OPT,
    pki: Path = PKI_OPT,
    request: Path = typer.Option(
        ..., "--request", help="The customer's `accord wallet request` output (JSON file)."
    ),
) -> None:
    """Issue (or renew) the customer's consent credential; prints what `accord wallet accept
    --credential` reads."""
    try:
        asked = json.loads(request.read_text())
        request_id, commitment = str(asked["requestId"]), bytes.fromhex(str(asked["commitment"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{request} is not a wallet request: {exc}") from exc
    with consent_stub(node, pki) as stub:
        reply = stub.IssueCredential(
            consent_pb2.IssueCredentialRequest(local_ref=ref, commitment=commitment), timeout=30
        )
    print(
        json.dumps(
            {
                "requestId": request_id,
                "publicKey": reply.public_key.hex(),
                "signature": reply.signature.hex(),
                "messages": [m.hex() for m in reply.messages],
                "expiresAt": reply.expires_at,
            },
            sort_keys=True,
        )
    )


@consent_app.command("show")
def show(ref: str = REF_OPT, node: str = NODE_OPT, pki: Path = PKI_OPT) -> None:
    """A customer's consent records with their status history."""
    with consent_stub(node, pki) as stub:
        reply = stub.Show(consent_pb2.SubjectRequest(local_ref=ref), timeout=30)
    records = json.loads(reply.records_json)
    table = Table(title=f"Consent of {ref}")
    for header in (
        "record",
        "status",
        "purposes",
        "expires",
        "granted at index",
        "revoked at index",
    ):
        table.add_column(header)
    for r in records:
        table.add_row(
            r["recordId"],
            r["status"],
            ", ".join(r["terms"]["purposes"]),
            dt.datetime.fromtimestamp(r["terms"]["expiresAt"], dt.UTC).date().isoformat(),
            str(r["grantIndex"]),
            str(r["revokeIndex"] if r["revokeIndex"] is not None else "-"),
        )
    Console().print(table)


@subject_app.command("export")
def export(
    ref: str = REF_OPT,
    out: Path = typer.Option(..., "--out", help="Write the JSON export here."),
    node: str = NODE_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Everything the node holds about the customer, every use, and ledger proofs."""
    with consent_stub(node, pki) as stub:
        reply = stub.ExportSubject(consent_pb2.SubjectRequest(local_ref=ref), timeout=120)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(reply.export_json)
    doc = json.loads(reply.export_json)
    Console().print(
        f"exported {len(doc['consents'])} consent records, {len(doc['uses'])} uses and "
        f"{len(doc['ledger']['inclusion'])} inclusion proofs to {out}"
    )


@subject_app.command("erase")
def erase(ref: str = REF_OPT, node: str = NODE_OPT, pki: Path = PKI_OPT) -> None:
    """Crypto-shredding: revoke, destroy the salt and local data; the ledger stays verifiable."""
    with consent_stub(node, pki) as stub:
        reply = stub.EraseSubject(consent_pb2.SubjectRequest(local_ref=ref), timeout=60)
    Console().print(
        f"erased {ref}: {reply.consents_revoked} consents revoked, {reply.consent_records} records "
        f"and {reply.data_uses} use logs deleted, salt destroyed"
    )
