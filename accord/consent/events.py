"""The events Accord writes to the ledger, as canonical JSON.

An event names commitments, never people: ``subject`` is a salted commitment to the customer at
one node, ``consent`` a salted commitment to one consent record. A ``data.use`` names not even
those in clear: its commitments, cited grant and session are sealed to the auditor and each
use carries only a fresh tag its customer can recognise (:class:`SealedDataUse`), so no two
uses share a byte string. Uses written before that (:class:`DataUse`) still decode and are
checked as they are. Encoding is canonical (sorted
keys, no spaces, ASCII), and decoding insists on it, so one event has exactly one byte string
and auditors can re-hash what they read.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from accord.consent.vocabulary import check_terms
from accord.crypto.use_seal import (
    NONCE_BYTES,
    TAG_BYTES,
    AuditedUse,
    new_use_tag,
    open_uses,
    seal_uses,
)
from accord.errors import InvalidInput

VERSION = 1
COMMITMENT_BYTES = 32
MAX_USES_PER_EVENT = 400
SESSION = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
NODE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_TIME = 2**40
# A sealed entry costs ~160 bytes per use (nonce, tag and 72 sealed bytes, base64): 256 of them
# stay well inside the ledger's 64 KiB per entry.
MAX_SEALED_USES = 256
# a sealed use list: 65-byte encapsulated key, 1 + 64 bytes of session, 72 bytes per use, tag
MAX_AUDIT_CHARS = 4 * (65 + 65 + 72 * MAX_SEALED_USES + 16 + 2) // 3 + 4


def canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _commitment(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise InvalidInput(f"{field} is not valid base64") from exc
    if len(raw) != COMMITMENT_BYTES:
        raise InvalidInput(f"{field} must be a {COMMITMENT_BYTES}-byte commitment")
    return raw


def _int(value: object, field: str, low: int = 0, high: int = MAX_TIME) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{field} must be an integer in [{low}, {high}]")
    return value


def _str(value: object, field: str, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise InvalidInput(f"{field} is missing or malformed")
    return value


@dataclass(frozen=True)
class ConsentGranted:
    node: str
    subject: bytes
    consent: bytes
    purposes: tuple[str, ...]
    expires: int
    at: int
    TYPE = "consent.granted"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": self.TYPE,
            "node": self.node,
            "subject": b64(self.subject),
            "consent": b64(self.consent),
            "purposes": list(self.purposes),
            "expires": self.expires,
            "at": self.at,
        }


@dataclass(frozen=True)
class ConsentRevoked:
    node: str
    subject: bytes
    consent: bytes
    at: int
    reason: str  # "withdrawn" or "erased"
    TYPE = "consent.revoked"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": self.TYPE,
            "node": self.node,
            "subject": b64(self.subject),
            "consent": b64(self.consent),
            "at": self.at,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Use:
    subject: bytes
    consent: bytes
    consent_index: int  # ledger index of the grant this use relies on


@dataclass(frozen=True)
class DataUse:
    node: str
    purpose: str
    session: str  # a training run, an alignment run, a scoring request
    at: int
    uses: tuple[Use, ...]
    TYPE = "data.use"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": self.TYPE,
            "node": self.node,
            "purpose": self.purpose,
            "session": self.session,
            "at": self.at,
            "uses": [
                {"subject": b64(u.subject), "consent": b64(u.consent), "index": u.consent_index}
                for u in self.uses
            ],
        }


@dataclass(frozen=True)
class UseTag:
    """One use in a sealed ``data.use``: a fresh nonce and the customer's tag over it."""

    nonce: bytes
    tag: bytes


@dataclass(frozen=True)
class UseProof:
    """The customer's consent proof for a one-use ``data.use``, in clear: anyone holding the
    node's issuer key (its ``issuer.key`` entry) re-checks it (:mod:`accord.consent.credential`).

    It discloses the node (the entry's), the purpose (the entry's), the credential's expiry (a
    UTC midnight every credential of that day shares), and the request's nonce the proof is
    bound to (fresh per request); the proof itself is fresh randomness per use."""

    expires: int
    nonce: str
    proof: bytes

    def to_json(self) -> dict[str, Any]:
        return {"expires": self.expires, "nonce": self.nonce, "proof": b64(self.proof)}


@dataclass(frozen=True)
class SealedDataUse:
    """A ``data.use`` only the auditor and the customer can link (:mod:`accord.crypto.use_seal`).

    In clear: the writing node, the purpose, the time and one ``(nonce, tag)`` per use. Sealed to
    the auditor (``audit``): the session and, per use, the subject and consent commitments and
    the cited grant. ``audit`` is empty when the node had no auditor to seal to; the violations
    check then reports every use of the entry as uncheckable.
    """

    node: str
    purpose: str
    at: int
    uses: tuple[UseTag, ...]
    audit: bytes
    proof: UseProof | None = None  # scoring uses the customer proved consent for
    TYPE = "data.use"

    def clear_json(self) -> dict[str, Any]:
        out = {
            "v": VERSION,
            "type": self.TYPE,
            "node": self.node,
            "purpose": self.purpose,
            "at": self.at,
            "uses": [{"nonce": b64(u.nonce), "tag": b64(u.tag)} for u in self.uses],
        }
        if self.proof is not None:  # in clear, and under the seal's binding like the rest
            out["proof"] = self.proof.to_json()
        return out

    def to_json(self) -> dict[str, Any]:
        return {**self.clear_json(), "audit": b64(self.audit)}

    def seal_info(self) -> bytes:
        """What the seal is bound to: every clear field of this entry."""
        return SEAL_DOMAIN + canonical(self.clear_json())


SEAL_DOMAIN = b"accord.v1.data-use\n"


def seal_data_use(
    node: str,
    purpose: str,
    session: str,
    at: int,
    uses: Sequence[tuple[Use, bytes]],
    auditor: bytes | None,
    proof: UseProof | None = None,
) -> SealedDataUse:
    """A sealed ``data.use`` for ``uses`` (each with the customer's tag key), sealed to the
    ``auditor``'s key (an uncompressed P-256 point), or unsealed if there is none; ``proof``,
    the customer's consent proof, only for an entry of one use."""
    if not 1 <= len(uses) <= MAX_SEALED_USES:
        raise InvalidInput(f"a data.use holds 1 to {MAX_SEALED_USES} uses")
    if proof is not None and len(uses) != 1:
        raise InvalidInput("a consent proof goes with a data.use of one use")
    tags = tuple(UseTag(*new_use_tag(key)) for _, key in uses)
    draft = SealedDataUse(node, purpose, at, tags, b"", proof)
    if auditor is None:
        return draft
    audited = tuple(AuditedUse(u.subject, u.consent, u.consent_index) for u, _ in uses)
    return replace(draft, audit=seal_uses(auditor, session, audited, info=draft.seal_info()))


def open_data_use(event: SealedDataUse, key_pem: bytes) -> tuple[str, tuple[Use, ...]]:
    """The session and uses of a sealed entry, with the auditor's private key (PEM)."""
    session, uses = open_uses(key_pem, event.audit, info=event.seal_info())
    if len(uses) != len(event.uses):
        raise InvalidInput("the sealed uses do not match the entry's tags")
    return session, tuple(Use(u.subject, u.consent, u.consent_index) for u in uses)


@dataclass(frozen=True)
class Record:
    """Any other event the network records (alignment runs, model and policy versions).

    ``node`` is the writer, ``kind`` one of :data:`RECORD_KINDS`, ``body`` non-personal facts.
    """

    node: str
    kind: str
    at: int
    body: Mapping[str, Any]
    TYPE = "record"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": self.TYPE,
            "node": self.node,
            "kind": self.kind,
            "at": self.at,
            "body": dict(self.body),
        }


RECORD_KINDS = ("alignment.run", "model.version", "policy.version", "training.run")


@dataclass(frozen=True)
class IssuerKey:
    """A channel's BBS public key for the consent credentials it issues, written by the channel
    itself (ledger authorship): an auditor checks every proof of its uses against the key the
    channel published last before the use."""

    node: str
    at: int
    key: bytes
    TYPE = "issuer.key"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": self.TYPE,
            "node": self.node,
            "at": self.at,
            "key": b64(self.key),
        }


@dataclass(frozen=True)
class UseRefused:
    """A use a node refused because its consent proof did not authorise it. Names no customer
    and no request: the node, the purpose asked, the time and the reason."""

    node: str
    purpose: str
    at: int
    reason: str
    TYPE = "use.refused"

    def to_json(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "type": self.TYPE,
            "node": self.node,
            "purpose": self.purpose,
            "at": self.at,
            "reason": self.reason,
        }


REFUSAL_REASONS = ("missing", "channel", "purpose", "expired", "replayed", "proof")
ISSUER_KEY_BYTES = 96

Event = ConsentGranted | ConsentRevoked | DataUse | SealedDataUse | Record | IssuerKey | UseRefused


def encode(event: Event) -> bytes:
    return canonical(event.to_json())


def decode(data: bytes) -> Event:
    """Parse and validate one ledger entry; raise :class:`InvalidInput` naming the problem."""
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: nesting deeper than the interpreter's stack, a few kB of brackets
        raise InvalidInput("a ledger event must be canonical JSON") from exc
    if not isinstance(obj, dict):
        raise InvalidInput("a ledger event must be a JSON object")
    if canonical(obj) != data:
        raise InvalidInput("a ledger event must be canonical JSON (sorted keys, no spaces, ASCII)")
    if obj.get("v") != VERSION:
        raise InvalidInput(f"unsupported event version {obj.get('v')!r}; this is version {VERSION}")
    kind = obj.get("type")
    node = _str(obj.get("node"), "node", NODE)
    at = _int(obj.get("at"), "at")
    if kind == ConsentGranted.TYPE:
        _only(obj, {"v", "type", "node", "subject", "consent", "purposes", "expires", "at"})
        purposes = obj.get("purposes")
        if not isinstance(purposes, list) or not purposes:
            raise InvalidInput("purposes must be a non-empty list")
        return ConsentGranted(
            node,
            _commitment(obj.get("subject"), "subject"),
            _commitment(obj.get("consent"), "consent"),
            check_terms("purposes", purposes, "purposes"),
            _int(obj.get("expires"), "expires"),
            at,
        )
    if kind == ConsentRevoked.TYPE:
        _only(obj, {"v", "type", "node", "subject", "consent", "at", "reason"})
        reason = obj.get("reason")
        if reason not in ("withdrawn", "erased"):
            raise InvalidInput("reason must be 'withdrawn' or 'erased'")
        return ConsentRevoked(
            node,
            _commitment(obj.get("subject"), "subject"),
            _commitment(obj.get("consent"), "consent"),
            at,
            str(reason),
        )
    if kind == DataUse.TYPE and "session" not in obj:
        return _sealed_use(obj, node, at)
    if kind == DataUse.TYPE:  # written before uses were sealed: still read and checked
        _only(obj, {"v", "type", "node", "purpose", "session", "at", "uses"})
        (purpose,) = check_terms("purposes", [str(obj.get("purpose"))], "purpose")
        uses = obj.get("uses")
        if not isinstance(uses, list) or not 1 <= len(uses) <= MAX_USES_PER_EVENT:
            raise InvalidInput(f"uses must list 1 to {MAX_USES_PER_EVENT} uses")
        parsed = []
        for i, use in enumerate(uses):
            if not isinstance(use, dict) or set(use) != {"subject", "consent", "index"}:
                raise InvalidInput(f"uses[{i}] must have exactly subject, consent and index")
            parsed.append(
                Use(
                    _commitment(use["subject"], f"uses[{i}].subject"),
                    _commitment(use["consent"], f"uses[{i}].consent"),
                    _int(use["index"], f"uses[{i}].index", 0, 2**63),
                )
            )
        return DataUse(
            node, purpose, _str(obj.get("session"), "session", SESSION), at, tuple(parsed)
        )
    if kind == IssuerKey.TYPE:
        _only(obj, {"v", "type", "node", "at", "key"})
        return IssuerKey(node, at, _bytes(obj.get("key"), "key", ISSUER_KEY_BYTES))
    if kind == UseRefused.TYPE:
        _only(obj, {"v", "type", "node", "purpose", "at", "reason"})
        (purpose,) = check_terms("purposes", [str(obj.get("purpose"))], "purpose")
        if obj.get("reason") not in REFUSAL_REASONS:
            raise InvalidInput(f"reason must be one of {', '.join(REFUSAL_REASONS)}")
        return UseRefused(node, purpose, at, str(obj["reason"]))
    if kind == Record.TYPE:
        _only(obj, {"v", "type", "node", "kind", "at", "body"})
        if obj.get("kind") not in RECORD_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(RECORD_KINDS)}")
        if not isinstance(obj.get("body"), dict):
            raise InvalidInput("body must be an object")
        return Record(node, str(obj["kind"]), at, obj["body"])
    raise InvalidInput(f"unknown event type {kind!r}")


def _bytes(value: object, field: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise InvalidInput(f"{field} is not valid base64") from exc
    if len(raw) != size:
        raise InvalidInput(f"{field} must be {size} bytes")
    return raw


def _use_proof(value: object) -> UseProof:
    if not isinstance(value, dict):
        raise InvalidInput("proof must be an object")
    _only(value, {"expires", "nonce", "proof"})
    nonce = value["nonce"]
    if not isinstance(nonce, str) or not 1 <= len(nonce) <= MAX_PROOF_NONCE:
        raise InvalidInput(f"proof.nonce must be 1 to {MAX_PROOF_NONCE} characters")
    proof = value["proof"]
    if not isinstance(proof, str) or len(proof) > MAX_PROOF_CHARS:
        raise InvalidInput("proof.proof must be a base64 string")
    try:
        raw = base64.b64decode(proof, validate=True)
    except binascii.Error as exc:
        raise InvalidInput("proof.proof is not valid base64") from exc
    return UseProof(_int(value["expires"], "proof.expires"), nonce, raw)


MAX_PROOF_NONCE = 64
MAX_PROOF_CHARS = 4096


def _sealed_use(obj: Mapping[str, Any], node: str, at: int) -> SealedDataUse:
    proof = _use_proof(obj["proof"]) if "proof" in obj else None
    _only(
        obj,
        {"v", "type", "node", "purpose", "at", "uses", "audit"} | ({"proof"} if proof else set()),
    )
    (purpose,) = check_terms("purposes", [str(obj.get("purpose"))], "purpose")
    uses = obj.get("uses")
    if not isinstance(uses, list) or not 1 <= len(uses) <= MAX_SEALED_USES:
        raise InvalidInput(f"uses must list 1 to {MAX_SEALED_USES} uses")
    tags = []
    for i, use in enumerate(uses):
        if not isinstance(use, dict) or set(use) != {"nonce", "tag"}:
            raise InvalidInput(f"uses[{i}] must have exactly nonce and tag")
        tags.append(
            UseTag(
                _bytes(use["nonce"], f"uses[{i}].nonce", NONCE_BYTES),
                _bytes(use["tag"], f"uses[{i}].tag", TAG_BYTES),
            )
        )
    audit = obj.get("audit")
    if not isinstance(audit, str) or len(audit) > MAX_AUDIT_CHARS:
        raise InvalidInput("audit must be a base64 string")
    try:
        sealed = base64.b64decode(audit, validate=True)
    except binascii.Error as exc:
        raise InvalidInput("audit is not valid base64") from exc
    if proof is not None and len(tags) != 1:
        raise InvalidInput("a consent proof goes with a data.use of one use")
    return SealedDataUse(node, purpose, at, tuple(tags), sealed, proof)


def _only(obj: Mapping[str, Any], allowed: set[str]) -> None:
    extra = set(obj) - allowed
    missing = allowed - set(obj)
    if extra:
        raise InvalidInput(f"unexpected fields {', '.join(sorted(extra))}")
    if missing:
        raise InvalidInput(f"missing fields {', '.join(sorted(missing))}")


@dataclass(frozen=True)
class ConsentStatus:
    """The value the status map holds for a consent commitment."""

    status: str  # "granted" or "revoked"
    node: str
    purposes: tuple[str, ...]
    expires: int
    granted_index: int
    revoked_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "node": self.node,
            "purposes": list(self.purposes),
            "expires": self.expires,
            "grantedIndex": self.granted_index,
            "revokedIndex": self.revoked_index,
        }

    def encode(self) -> bytes:
        return canonical(self.to_json())

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConsentStatus:
        if not isinstance(data, Mapping) or set(data) != {
            "status",
            "node",
            "purposes",
            "expires",
            "grantedIndex",
            "revokedIndex",
        }:
            raise InvalidInput(
                "a consent status has status, node, purposes, expires, grantedIndex, revokedIndex"
            )
        status = data["status"]
        if status not in ("granted", "revoked"):
            raise InvalidInput("status must be 'granted' or 'revoked'")
        revoked = data["revokedIndex"]
        purposes = data["purposes"]
        if not isinstance(purposes, list):
            raise InvalidInput("purposes must be a list")
        return cls(
            str(status),
            _str(data["node"], "node", NODE),
            check_terms("purposes", purposes, "purposes"),
            _int(data["expires"], "expires"),
            _int(data["grantedIndex"], "grantedIndex", 0, 2**63),
            None if revoked is None else _int(revoked, "revokedIndex", 0, 2**63),
        )
