"""One customer's trail: every consent event and data use the ledger holds for them.

The ledger names people only by salted commitments. A customer's channel hands them the
opening (node, local reference, salt) through ``accord subject export``; from it anyone they
choose can recompute their subject commitment and pick their grants and revocations out of the
log, and recompute their use-tag key to recognise their data uses (a use names no commitment
in clear: its tag is fresh per use and only that key recognises it). With the auditor's key the
trail also shows each use's session and cited grant. Pure: the opening in, the matching
entries out.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accord.auditing.entries import LedgerEvent, Opener
from accord.consent.credential import PresentationRefused, verify_use_proof
from accord.consent.events import (
    ConsentGranted,
    ConsentRevoked,
    DataUse,
    IssuerKey,
    SealedDataUse,
    Use,
)
from accord.crypto.commitment import Opening
from accord.crypto.errors import CryptoError
from accord.crypto.use_seal import tag_matches
from accord.errors import InvalidInput


def parse_opening(doc: Any, what: str) -> Opening:
    """An :class:`Opening` from the export's ``opening`` object (or the whole export)."""
    if isinstance(doc, dict) and "opening" in doc and "salt" not in doc:
        doc = doc["opening"]
        if doc is None:
            raise InvalidInput(
                f"{what} holds no opening: the customer was erased, so their entries are unlinkable"
            )
    if not isinstance(doc, dict) or not {"node", "localRef", "salt"} <= set(doc):
        raise InvalidInput(
            f"{what} is not a commitment opening: expected a JSON object with node, localRef and "
            "salt (the 'opening' of `accord subject export`)"
        )
    node, ref, salt = doc["node"], doc["localRef"], doc["salt"]
    if not isinstance(node, str) or not isinstance(ref, str) or not isinstance(salt, str):
        raise InvalidInput(f"{what}: node, localRef and salt must be strings")
    try:
        raw = base64.b64decode(salt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{what}: salt is not valid base64") from exc
    opening = Opening(node, ref, raw)
    try:
        opening.subject()
    except CryptoError as exc:
        raise InvalidInput(f"{what}: {exc}") from exc
    return opening


def read_opening(path: Path) -> Opening:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InvalidInput(f"{path} does not exist") from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{path} is a directory, not an opening file") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}") from exc
    return parse_opening(doc, str(path))


@dataclass(frozen=True)
class TrailEntry:
    index: int
    at: int
    event: str  # "consent granted", "consent revoked", "data use"
    purposes: tuple[str, ...]
    node: str
    consent: bytes
    detail: str  # expiry, revocation reason, or the session and cited grant of a use


def subject_trail(
    events: Iterable[LedgerEvent],
    subject: bytes,
    tag_key: bytes | None = None,
    opener: Opener | None = None,
) -> list[TrailEntry]:
    """Every grant, revocation and use in ``events`` that names ``subject`` (sealed uses: whose
    tag ``tag_key`` recognises; see :meth:`Opening.use_tag_key`), in ledger order."""
    trail: list[TrailEntry] = []
    issuer_keys: dict[str, bytes] = {}
    for item in events:
        event = item.event
        if isinstance(event, IssuerKey):
            issuer_keys[event.node] = event.key
        elif isinstance(event, ConsentGranted) and event.subject == subject:
            trail.append(
                TrailEntry(
                    item.index,
                    event.at,
                    "consent granted",
                    event.purposes,
                    event.node,
                    event.consent,
                    f"expires {event.expires}",
                )
            )
        elif isinstance(event, ConsentRevoked) and event.subject == subject:
            trail.append(
                TrailEntry(
                    item.index,
                    event.at,
                    "consent revoked",
                    (),
                    event.node,
                    event.consent,
                    event.reason,
                )
            )
        elif isinstance(event, SealedDataUse) and tag_key is not None:
            mine = [i for i, u in enumerate(event.uses) if tag_matches(tag_key, u.nonce, u.tag)]
            if not mine:
                continue
            session, opened = _open(event, opener)
            for position in mine:
                use = opened[position] if opened else None
                trail.append(
                    TrailEntry(
                        item.index,
                        event.at,
                        "data use",
                        (event.purpose,),
                        event.node,
                        use.consent if use else b"",
                        (
                            f"session {session}, grant at entry {use.consent_index}"
                            if use
                            else "session and grant sealed to the auditor"
                        )
                        + _proof_note(event, issuer_keys),
                    )
                )
        elif isinstance(event, DataUse):
            for use in event.uses:
                if use.subject == subject:
                    trail.append(
                        TrailEntry(
                            item.index,
                            event.at,
                            "data use",
                            (event.purpose,),
                            event.node,
                            use.consent,
                            f"session {event.session}, grant at entry {use.consent_index}",
                        )
                    )
    return trail


def _proof_note(event: SealedDataUse, keys: dict[str, bytes]) -> str:
    """Whether the use carries the customer's consent proof, and whether it verifies."""
    if event.proof is None:
        return ""
    key = keys.get(event.node)
    if key is None:
        return f"; consent proof, but {event.node} published no issuer key before it"
    try:
        verify_use_proof(key, event)
    except (PresentationRefused, InvalidInput) as exc:
        return f"; consent proof does not verify: {exc}"
    return "; consent proof verified"


def _open(event: SealedDataUse, opener: Opener | None) -> tuple[str, tuple[Use, ...]]:
    if opener is None or not event.audit:
        return "", ()
    try:
        return opener(event)
    except (CryptoError, InvalidInput):
        return "", ()
