"""Consent-status proofs as documents, and their offline verification.

A proof document says "consent C has status S as of checkpoint N": the signed checkpoint note
(whose ``accord-status`` line carries the status-map root and ``accord-time`` its time), the
status JSON, and the sparse-Merkle proof. Anyone holding the coordinator's verifier key checks
it with nothing else.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

from accord.consent.events import ConsentStatus, canonical
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteVerifier
from accord.crypto.note import Checkpoint, verify_checkpoint
from accord.crypto.statusmap import StatusProof, verify_status
from accord.errors import AccordError, InvalidInput

STATUS_LINE = "accord-status "
TIME_LINE = "accord-time "


class ConsentNotValid(AccordError):
    """The proof verified, and says the consent is not valid (revoked, expired, unknown)."""


@dataclass(frozen=True)
class ValidConsent:
    checkpoint: Checkpoint
    as_of: int
    status: ConsentStatus


def proof_document(
    note: str, consent: bytes, status_json: str, proof: StatusProof
) -> dict[str, Any]:
    return {
        "checkpoint": note,
        "consent": base64.b64encode(consent).decode(),
        "status": json.loads(status_json) if status_json else None,
        "proof": proof.to_json(),
    }


def _extension(checkpoint: Checkpoint, prefix: str) -> str:
    for line in checkpoint.extensions:
        if line.startswith(prefix):
            return line[len(prefix) :]
    raise InvalidInput(f"the checkpoint carries no '{prefix.strip()}' line: not an Accord ledger")


def verify_consent_proof(doc: object, verifier: NoteVerifier) -> ValidConsent:
    """Verify a proof document offline; return the consent if valid as of its checkpoint.

    Raises :class:`InvalidInput` for a malformed document, :class:`CryptoError` subclasses for
    signatures or proofs that do not verify, and :class:`ConsentNotValid` when everything
    verifies but the consent was revoked, had expired, or is not on the ledger.
    """
    if not isinstance(doc, dict) or set(doc) != {"checkpoint", "consent", "status", "proof"}:
        raise InvalidInput("a consent proof has exactly checkpoint, consent, status and proof")
    if not isinstance(doc["checkpoint"], str) or not isinstance(doc["consent"], str):
        raise InvalidInput("checkpoint and consent must be strings")
    checkpoint = verify_checkpoint(doc["checkpoint"], [verifier], origin=verifier.name)
    try:
        root = base64.b64decode(_extension(checkpoint, STATUS_LINE), validate=True)
        as_of = int(_extension(checkpoint, TIME_LINE))
        key = base64.b64decode(doc["consent"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("the proof's checkpoint lines or consent are not well formed") from exc
    if not isinstance(doc["proof"], dict):
        raise InvalidInput("proof must be an object")
    proof = StatusProof.from_json(doc["proof"])
    status = None if doc["status"] is None else ConsentStatus.from_json(doc["status"])
    value = None if status is None else sha256(canonical(status.to_json())).digest()
    verify_status(root, key, value, proof)
    if status is None:
        raise ConsentNotValid(f"consent is not on the ledger as of checkpoint {checkpoint.size}")
    if status.status == "revoked":
        raise ConsentNotValid(
            f"consent was revoked at ledger index {status.revoked_index} (as of checkpoint "
            f"{checkpoint.size})"
        )
    if status.expires <= as_of:
        raise ConsentNotValid(
            f"consent expired at {status.expires}, before checkpoint {checkpoint.size}"
        )
    return ValidConsent(checkpoint, as_of, status)


__all__ = [
    "ConsentNotValid",
    "CryptoError",
    "ValidConsent",
    "proof_document",
    "verify_consent_proof",
]
