"""The events Accord writes to the ledger, as canonical JSON.

An event names commitments, never people: ``subject`` is a salted commitment to the customer at
one node, ``consent`` a salted commitment to one consent record. Encoding is canonical (sorted
keys, no spaces, ASCII), and decoding insists on it, so one event has exactly one byte string
and auditors can re-hash what they read.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from accord.consent.vocabulary import check_terms
from accord.errors import InvalidInput

VERSION = 1
COMMITMENT_BYTES = 32
MAX_USES_PER_EVENT = 400
SESSION = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
NODE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_TIME = 2**40


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

Event = ConsentGranted | ConsentRevoked | DataUse | Record


def encode(event: Event) -> bytes:
    return canonical(event.to_json())


def decode(data: bytes) -> Event:
    """Parse and validate one ledger entry; raise :class:`InvalidInput` naming the problem."""
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
    if kind == DataUse.TYPE:
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
    if kind == Record.TYPE:
        _only(obj, {"v", "type", "node", "kind", "at", "body"})
        if obj.get("kind") not in RECORD_KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(RECORD_KINDS)}")
        if not isinstance(obj.get("body"), dict):
            raise InvalidInput("body must be an object")
        return Record(node, str(obj["kind"]), at, obj["body"])
    raise InvalidInput(f"unknown event type {kind!r}")


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
