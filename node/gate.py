"""The consent gate: the only way customer data leaves the node's store for a computation.

``ConsentGate.open(purpose, session, refs)`` checks, for every customer, a granted consent that
covers the purpose, is on the ledger, unexpired and unrevoked (and that the network has not
blocked the customer); appends a ``data.use`` event for the newly used customers whose
reference to the consent (its commitment and ledger index) is sealed to the auditor, beside a
tag only the customer can recognise; and only then reads their data into :class:`ConsentedRows`.

Structure, not convention: this module is the only one that reads the ``customer`` table's
identifiers or features (``tests/unit/node/test_gate_structure.py`` enforces it), and the
computations of the node (PSI, bottom models) take :class:`ConsentedRows`, which nothing but
the gate can construct.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine, bindparam, text
from sqlmodel import Session, select

from accord.clock import Clock, system_clock
from accord.consent.events import MAX_SEALED_USES, Use, UseProof, seal_data_use
from accord.consent.vocabulary import check_terms
from accord.crypto.commitment import use_tag_key
from accord.errors import InvalidInput, NotPermitted
from accord.ledger_writer import EventLedger
from accord.node.models import Customer, NetworkBlock, Purchase

_GATE_TOKEN = object()
BATCH = 2000

# Plain parameterised SQL: the gate reads and logs many customers per call (alignment and
# training touch every aligned customer), where per-row ORM objects would dominate.
# The salt comes along to derive the customer's use-tag key (an erased customer has no salt,
# and no granted consent either).
_GRANTED = (
    "SELECT c.local_ref, c.record_id, c.subject_commitment, c.consent_commitment, "
    "c.grant_index, c.purposes, s.salt "
    "FROM consent_record c JOIN subject_salt s ON s.local_ref = c.local_ref "
    "WHERE c.status = 'granted' AND c.grant_index IS NOT NULL AND c.expires_at > :now"
)
_PERMITS = text(_GRANTED)
_PERMITS_FOR = text(_GRANTED + " AND c.local_ref IN :refs").bindparams(
    bindparam("refs", expanding=True)
)
_DONE = text(
    "SELECT local_ref, ledger_index FROM data_use WHERE session = :session AND purpose = :purpose"
)
_INSERT_USE = text(
    "INSERT INTO data_use "
    "(session, purpose, local_ref, record_id, consent_index, ledger_index, at) "
    "VALUES (:session, :purpose, :local_ref, :record_id, :consent_index, :ledger_index, :at)"
)
_COLUMNS = text("SELECT name FROM schema_column ORDER BY position")
_WINDOW = text("SELECT as_of_day FROM purchase_window")
_PURCHASES = text(
    "SELECT local_ref, day, items, amount FROM purchase WHERE local_ref IN :refs AND day <= :end"
).bindparams(bindparam("refs", expanding=True))
_CUSTOMERS = text(
    "SELECT local_ref, features, phone, email, psi_phone, psi_email FROM customer "
    "WHERE local_ref IN :refs"
).bindparams(bindparam("refs", expanding=True))


@dataclass(frozen=True)
class Permit:
    """Why one customer may be used: the consent that covers the purpose."""

    local_ref: str
    record_id: str
    subject: bytes
    consent: bytes
    grant_index: int
    tag_key: bytes = field(repr=False, default=b"")  # recognises this customer's use tags


@dataclass(frozen=True)
class ConsentedRows:
    """Customer data released for one purpose and session, after the checks and the log.

    ``refs[i]`` is the customer of ``features[i]`` and ``identifiers[i]``; ``refused`` lists the
    requested customers who were left out (no valid consent), without saying why to the caller.
    """

    purpose: str
    session: str
    refs: tuple[str, ...]
    features: np.ndarray
    columns: tuple[str, ...]
    identifiers: tuple[tuple[str | None, str | None], ...]
    use_indexes: tuple[int, ...]
    refused: tuple[str, ...]
    # The identifiers mapped to curve points, for PSI: (phone point, email point) per row.
    points: tuple[tuple[bytes | None, bytes | None], ...]
    permits: tuple[Permit, ...]
    _token: object = field(repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if self._token is not _GATE_TOKEN:
            raise TypeError("ConsentedRows come only from ConsentGate.open")

    def __len__(self) -> int:
        return len(self.refs)


class ConsentGate:
    def __init__(
        self,
        engine: Engine,
        channel: str,
        ledger: EventLedger,
        clock: Clock = system_clock,
        *,
        auditor: bytes | None = None,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.ledger = ledger
        # the auditor's sealing key (accord.pki_layout.load_audit_recipient); without one, uses
        # are still unlinkable but the auditor's check reports them as uncheckable
        self.auditor = auditor
        self._clock = clock
        self._lock = threading.Lock()
        with Session(engine) as session:  # blocks survive restarts
            self._blocked: set[str] = {
                b.local_ref for b in session.exec(select(NetworkBlock)).all()
            }

    # -- network-wide blocks (a revocation at another node, pushed by the coordinator) ------
    def block(self, local_refs: Iterable[str]) -> None:
        with self._lock:
            self._blocked.update(local_refs)

    def is_blocked(self, local_ref: str) -> bool:
        with self._lock:
            return local_ref in self._blocked

    # -- the checks -----------------------------------------------------------------------
    def permits(self, purpose: str, local_refs: Sequence[str] | None) -> dict[str, Permit]:
        """The customers that may be used for ``purpose`` now, each with its covering consent."""
        check_terms("purposes", (purpose,), "purpose")
        params = {"now": int(self._clock())}
        rows: list[Any] = []
        with self.engine.connect() as conn:
            if local_refs is None:
                rows = list(conn.execute(_PERMITS, params).all())
            else:
                wanted = sorted(set(local_refs))
                for start in range(0, len(wanted), BATCH):
                    chunk = wanted[start : start + BATCH]
                    rows.extend(conn.execute(_PERMITS_FOR, {**params, "refs": chunk}).all())
        with self._lock:
            blocked = set(self._blocked)
        permits: dict[str, Permit] = {}
        # purposes is a JSON list of vocabulary ids ([a-z-]+), so the quoted id is exact
        quoted = json.dumps(purpose)
        for ref, record_id, subject, consent, grant_index, purposes, salt in rows:
            if ref in blocked or ref in permits or quoted not in purposes:
                continue
            permits[ref] = Permit(
                ref,
                record_id,
                bytes(subject),
                bytes(consent),
                int(grant_index),
                use_tag_key(bytes(salt), self.channel, ref),
            )
        return permits

    def open(
        self,
        purpose: str,
        session_id: str,
        local_refs: Sequence[str] | None = None,
        proof: UseProof | None = None,
    ) -> ConsentedRows:
        """Check consent, log the use, then release the data of the permitted customers.

        ``proof``: the customer's consent proof the node checked for a one-customer use; it goes
        onto the ledger with that use's entry."""
        if proof is not None and (local_refs is None or len(set(local_refs)) != 1):
            raise InvalidInput("a consent proof covers the use of one customer")
        if not session_id or len(session_id) > 64:
            raise InvalidInput("session must be 1-64 characters")
        permits = self.permits(purpose, local_refs)
        requested = list(dict.fromkeys(local_refs)) if local_refs is not None else sorted(permits)
        allowed = [ref for ref in requested if ref in permits]
        refused = tuple(ref for ref in requested if ref not in permits)
        use_indexes = self._log_uses(purpose, session_id, [permits[r] for r in allowed], proof)
        refs, features, columns, identifiers, points = self._read(allowed)
        return ConsentedRows(
            purpose,
            session_id,
            refs,
            features,
            columns,
            identifiers,
            tuple(use_indexes[r] for r in refs),
            refused,
            points,
            tuple(permits[r] for r in refs),
            _GATE_TOKEN,
        )

    def require(
        self, purpose: str, session_id: str, local_ref: str, proof: UseProof | None = None
    ) -> ConsentedRows:
        """One customer, or PERMISSION_DENIED: for per-request computations (scoring)."""
        rows = self.open(purpose, session_id, [local_ref], proof)
        if not rows.refs:
            raise NotPermitted(f"no valid consent for purpose {purpose!r} at {self.channel!r}")
        return rows

    # -- the log --------------------------------------------------------------------------
    def _log_uses(
        self,
        purpose: str,
        session_id: str,
        permits: list[Permit],
        proof: UseProof | None = None,
    ) -> dict[str, int]:
        """Append a data.use for each customer not yet used in this session; return indexes."""
        with self.engine.connect() as conn:
            done = {
                str(ref): int(index)
                for ref, index in conn.execute(_DONE, {"session": session_id, "purpose": purpose})
            }
        fresh = [p for p in permits if p.local_ref not in done]
        if fresh:
            now = int(self._clock())
            # sealed: no commitment, grant index or session in clear (P6, issue 16)
            events = [
                seal_data_use(
                    self.channel,
                    purpose,
                    session_id,
                    now,
                    [
                        (Use(p.subject, p.consent, p.grant_index), p.tag_key)
                        for p in fresh[i : i + MAX_SEALED_USES]
                    ],
                    self.auditor,
                    proof,
                )
                for i in range(0, len(fresh), MAX_SEALED_USES)
            ]
            indexes = self.ledger.append(events)
            rows = []
            for n, permit in enumerate(fresh):
                index = indexes[n // MAX_SEALED_USES]
                done[permit.local_ref] = index
                rows.append(
                    {
                        "session": session_id,
                        "purpose": purpose,
                        "local_ref": permit.local_ref,
                        "record_id": permit.record_id,
                        "consent_index": permit.grant_index,
                        "ledger_index": index,
                        "at": now,
                    }
                )
            with self.engine.begin() as conn:
                conn.execute(_INSERT_USE, rows)
        return {p.local_ref: done[p.local_ref] for p in permits}

    # -- the data -------------------------------------------------------------------------
    def _read(
        self, refs: list[str]
    ) -> tuple[
        tuple[str, ...],
        np.ndarray,
        tuple[str, ...],
        tuple[tuple[str | None, str | None], ...],
        tuple[tuple[bytes | None, bytes | None], ...],
    ]:
        found: dict[str, Any] = {}
        purchases: list[Any] = []
        with self.engine.connect() as conn:
            columns = tuple(str(r[0]) for r in conn.execute(_COLUMNS))
            as_of = conn.execute(_WINDOW).scalar()
            for start in range(0, len(refs), BATCH):
                chunk = refs[start : start + BATCH]
                for row in conn.execute(_CUSTOMERS, {"refs": chunk}):
                    found[str(row[0])] = row
                if as_of is not None and chunk:
                    purchases += conn.execute(_PURCHASES, {"refs": chunk, "end": as_of}).all()
        ordered = tuple(r for r in refs if r in found)
        if as_of is not None:  # columns derive from the purchase log, for released rows only
            matrix = _derived(ordered, columns, purchases, int(as_of))
        else:
            matrix = np.full((len(ordered), len(columns)), np.nan)
            for i, ref in enumerate(ordered):
                values = json.loads(found[ref][1])
                matrix[i] = [np.nan if values.get(c) is None else values[c] for c in columns]
        identifiers = tuple((found[r][2], found[r][3]) for r in ordered)
        points = tuple((_bytes_or_none(found[r][4]), _bytes_or_none(found[r][5])) for r in ordered)
        return ordered, matrix, columns, identifiers, points


def _derived(
    refs: tuple[str, ...], columns: tuple[str, ...], purchases: list[Any], as_of_day: int
) -> np.ndarray:
    """The purchase features of ``refs`` as of the node's cut-off (NaN: no purchase by then)."""
    import pandas as pd  # only purchase-log nodes need it: not loaded at start-up

    from accord.data.purchase_features import purchase_features

    frame = pd.DataFrame(purchases, columns=["local_ref", "day", "number_of_cds", "dollar_value"])
    frame["date"] = pd.to_datetime(frame["day"].astype(np.int64), unit="D")
    end = (pd.Timestamp(0) + pd.Timedelta(days=as_of_day)).date()
    features = purchase_features(frame, end, key="local_ref")
    return features.reindex(index=list(refs), columns=list(columns)).to_numpy(dtype=float)


def _bytes_or_none(value: object) -> bytes | None:
    return None if value is None else bytes(value)  # type: ignore[call-overload]


def subject_access(engine: Engine, local_ref: str) -> dict[str, object] | None:
    """What the node holds about one customer, for that customer's own export (Art. 15 access).

    Not a computation for a purpose, so it needs no consent; it is the subject's right.
    """
    with Session(engine) as session:
        row = session.exec(select(Customer).where(Customer.local_ref == local_ref)).first()
        if row is None:
            return None
        bought = session.exec(
            select(Purchase).where(Purchase.local_ref == local_ref).order_by(Purchase.day)  # type: ignore[arg-type]
        ).all()
        out: dict[str, object] = {
            "localRef": row.local_ref,
            "phone": row.phone,
            "email": row.email,
            "features": json.loads(row.features),
            "importedAt": row.imported_at,
        }
        if bought:
            import pandas as pd

            out["purchases"] = [
                {
                    "date": (pd.Timestamp(0) + pd.Timedelta(days=p.day)).strftime("%Y-%m-%d"),
                    "items": p.items,
                    "amount": p.amount,
                }
                for p in bought
            ]
        return out
