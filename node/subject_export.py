"""The data subject's export: everything this node holds about them, every use, and proofs."""

from __future__ import annotations

import base64
from typing import Any

from accord.consent.proofs import proof_document
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import InclusionProof
from accord.crypto.note import verify_checkpoint
from accord.crypto.statusmap import StatusProof
from accord.errors import NotFound
from accord.ledger_writer import LedgerWriter
from accord.node.consent import ConsentBook
from accord.node.gate import subject_access
from accord.proto.v1 import ledger_pb2


def export_subject(
    book: ConsentBook, ledger: LedgerWriter, coordinator: NoteVerifier, local_ref: str, now: int
) -> dict[str, Any]:
    data = subject_access(book.engine, local_ref)
    records = book.records(local_ref)
    salt = book.salt(local_ref)
    if data is None and not records:
        raise NotFound(f"{book.channel!r} holds nothing for local_ref {local_ref!r}")
    uses = book.uses(local_ref)
    reply = ledger.call("GetCheckpoint", ledger_pb2.GetCheckpointRequest())
    note: str = reply.note  # type: ignore[attr-defined]
    checkpoint = verify_checkpoint(note, [coordinator], origin=coordinator.name)
    indexes = sorted(
        {r.grant_index for r in records if r.grant_index is not None}
        | {r.revoke_index for r in records if r.revoke_index is not None}
        | {u.ledger_index for u in uses}
    )
    inclusion: dict[str, Any] = {}
    for index in indexes:
        if index >= checkpoint.size:
            continue  # not yet covered by a checkpoint; a later export will prove it
        proof = ledger.call(
            "GetInclusionProof",
            ledger_pb2.GetInclusionProofRequest(index=index, tree_size=checkpoint.size),
        )
        inclusion[str(index)] = InclusionProof(
            leaf_index=index,
            tree_size=checkpoint.size,
            root=checkpoint.root_hash,
            leaf_hash=bytes(proof.leaf_hash),  # type: ignore[attr-defined]
            proof=tuple(bytes(h) for h in proof.hashes),  # type: ignore[attr-defined]
        ).to_json()
    statuses = []
    for record in records:
        found = ledger.call(
            "GetConsentStatus",
            ledger_pb2.GetConsentStatusRequest(consent=record.consent_commitment),
        )
        statuses.append(
            proof_document(
                found.checkpoint.note,  # type: ignore[attr-defined]
                record.consent_commitment,
                found.status_json,  # type: ignore[attr-defined]
                StatusProof(
                    tuple(bytes(s) for s in found.siblings),  # type: ignore[attr-defined]
                    bytes(found.terminal_key) or None,  # type: ignore[attr-defined]
                    bytes(found.terminal_value_hash) or None,  # type: ignore[attr-defined]
                ),
            )
        )
    return {
        "node": book.channel,
        "exportedAt": now,
        "opening": None
        if salt is None
        else {"node": book.channel, "localRef": local_ref, "salt": base64.b64encode(salt).decode()},
        "data": data,
        "consents": [r.to_json() for r in records],
        "uses": [
            {
                "session": u.session,
                "purpose": u.purpose,
                "recordId": u.record_id,
                "consentIndex": u.consent_index,
                "ledgerIndex": u.ledger_index,
                "at": u.at,
            }
            for u in uses
        ],
        "ledger": {"checkpoint": note, "inclusion": inclusion, "consentStatus": statuses},
    }
