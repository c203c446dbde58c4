"""The node's customer store, for management only: import, count, schema, deletion.

Nothing here returns a customer's identifiers or feature values: those leave the store only
through :mod:`accord.node.gate`, which checks consent and logs the use first.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import structlog
from sqlalchemy import Connection, Engine, delete, func, text
from sqlmodel import Session, col, select

from accord.clock import Clock, system_clock
from accord.crypto.errors import MalformedInput
from accord.crypto.psi import Identifier, hash_to_points, identifier_hash
from accord.data.channel_file import ChannelTable
from accord.errors import InvalidInput
from accord.node.models import Customer, Purchase, PurchaseWindow, SchemaColumn
from accord.registry import FeatureColumn
from accord.rowkeys import ROW_KEY_BYTES

if TYPE_CHECKING:
    from accord.data.purchase_file import PurchaseLog

log = structlog.get_logger(__name__)

BATCH = 2000
EPOCH = dt.date(1970, 1, 1)
DEFAULT_COUNTRY_CODE = "886"  # for national-format phone numbers (Taiwan in the scenarios)


def _points(
    table: ChannelTable, country_code: str
) -> tuple[list[bytes | None], list[bytes | None]]:
    """Each customer's identifiers, normalised and mapped to curve points (None if unusable)."""

    def mapped(values: list[str], parse: Callable[[str], Identifier]) -> list[bytes | None]:
        hashes: list[bytes | None] = []
        for raw in values:
            try:
                hashes.append(identifier_hash(parse(raw)) if raw else None)
            except MalformedInput:
                hashes.append(None)
        known = [h for h in hashes if h is not None]
        points = iter(hash_to_points(known))
        return [next(points) if h is not None else None for h in hashes]

    phones = mapped(table.phones, lambda raw: Identifier.phone(raw, country_code=country_code))
    emails = mapped(table.emails, Identifier.email)
    return phones, emails


def import_table(
    engine: Engine,
    table: ChannelTable,
    channel: str,
    clock: Clock = system_clock,
    country_code: str = DEFAULT_COUNTRY_CODE,
) -> int:
    """Replace the node's customers and schema with ``table``, in one transaction."""
    if table.channel != channel:
        raise InvalidInput(
            f"this file is channel {table.channel!r}'s data; this node is {channel!r}: import "
            "only your own columns"
        )
    names = list(table.columns)
    rows = [
        json.dumps(
            {
                n: (None if math.isnan(v) else float(v))
                for n, v in zip(names, table.values[i], strict=True)
            }
        )
        for i in range(len(table))
    ]
    with Session(engine) as session:
        _replace(session, table, rows, clock, country_code)
        session.commit()
    return len(table)


def import_purchases(
    engine: Engine,
    log: PurchaseLog,
    channel: str,
    as_of: dt.date,
    clock: Clock = system_clock,
    country_code: str = DEFAULT_COUNTRY_CODE,
) -> int:
    """Replace the node's customers with those of a purchase log and keep the log; the node's
    columns become :data:`FEATURE_TYPES`, derived from purchases up to ``as_of`` only when the
    consent gate releases a customer."""
    from accord.data.purchase_features import FEATURE_TYPES  # pandas, only for purchase logs

    if log.channel != channel:
        raise InvalidInput(
            f"this file is channel {log.channel!r}'s purchase log; this node is {channel!r}: "
            "import only your own purchases"
        )
    refs = list(log.customers)
    identities = ChannelTable(
        channel,
        refs,
        [p for p, _ in log.customers.values()],
        [e for _, e in log.customers.values()],
        dict(FEATURE_TYPES),
        np.full((len(refs), len(FEATURE_TYPES)), np.nan),  # derived later, inside the gate
    )
    days = (log.purchases["date"].to_numpy(dtype="datetime64[D]").astype(np.int64)).tolist()
    with Session(engine) as session:
        _replace(session, identities, ["{}"] * len(refs), clock, country_code)
        frame = log.purchases
        for start in range(0, len(frame), BATCH):
            chunk = frame.iloc[start : start + BATCH]
            session.add_all(
                Purchase(local_ref=ref, day=day, items=int(items), amount=float(amount))
                for ref, day, items, amount in zip(
                    chunk["local_ref"],
                    days[start : start + BATCH],
                    chunk["number_of_cds"],
                    chunk["dollar_value"],
                    strict=True,
                )
            )
            session.flush()
        session.add(PurchaseWindow(as_of_day=(as_of - EPOCH).days))
        session.commit()
    return len(refs)


def _replace(
    session: Session,
    table: ChannelTable,
    features: list[str],
    clock: Clock,
    country_code: str,
) -> None:
    """Swap every customer, column, purchase and cut-off for ``table``'s, in ``session``."""
    now = int(clock())
    phone_points, email_points = _points(table, country_code)
    for model in (Customer, SchemaColumn, Purchase, PurchaseWindow):
        session.exec(delete(model))
    for position, (name, kind) in enumerate(table.columns.items()):
        session.add(SchemaColumn(name=name, type=kind, position=position))
    for start in range(0, len(table), BATCH):
        session.add_all(
            Customer(
                local_ref=table.refs[i],
                phone=table.phones[i] or None,
                email=table.emails[i] or None,
                features=features[i],
                imported_at=now,
                psi_phone=phone_points[i],
                psi_email=email_points[i],
            )
            for i in range(start, min(start + BATCH, len(table)))
        )
        session.flush()


def customer_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Customer)).one())


def schema(engine: Engine) -> tuple[FeatureColumn, ...]:
    with Session(engine) as session:
        rows = session.exec(select(SchemaColumn).order_by(col(SchemaColumn.position))).all()
        return tuple(FeatureColumn(r.name, r.type) for r in rows)


def existing_refs(engine: Engine, refs: set[str]) -> set[str]:
    """Which of ``refs`` are customers here (references only, no data)."""
    found: set[str] = set()
    items = sorted(refs)
    with Session(engine) as session:
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            found.update(
                session.exec(
                    select(Customer.local_ref).where(col(Customer.local_ref).in_(chunk))
                ).all()
            )
    return found


# Every table that ties a customer (by local reference) to data, row keys or a history here.
_BY_REF = tuple(
    text(f"DELETE FROM {table} WHERE local_ref = :ref")  # noqa: S608 (fixed table names)
    for table in ("customer", "purchase", "alignment_row", "network_block", "scoring_set")
)
_ROW_KEYS = text("SELECT row_key FROM alignment_row WHERE local_ref = :ref")
_DELIVERED_STOPS = text(
    "SELECT id, payload FROM ledger_outbox WHERE kind = 'network.stop' AND state <> 'pending'"
)
_SET_PAYLOAD = text("UPDATE ledger_outbox SET payload = :payload WHERE id = :id")


def delete_customer(engine: Engine, local_ref: str) -> None:
    """Erase a customer: their row, purchases, row keys in every alignment run, network block
    and scoring set, and their row keys in network stops already delivered (a stop still owed
    keeps them until it is sent, see :func:`forget_row_keys`). The ledger keeps only
    commitments. Then the database file and its WAL are rewritten without them."""
    with engine.begin() as conn:
        keys = {bytes(k) for (k,) in conn.execute(_ROW_KEYS, {"ref": local_ref})}
        for statement in _BY_REF:
            conn.execute(statement, {"ref": local_ref})
        if keys:
            _drop_row_keys(conn, conn.execute(_DELIVERED_STOPS).all(), keys.__contains__)
    checkpoint(engine)


def forget_row_keys(conn: Connection, stops: list[tuple[int, bytes]]) -> None:
    """Drop from these delivered network stops the row keys of customers erased meanwhile
    (keys this node no longer holds in any alignment run)."""
    if not stops:
        return
    held = text("SELECT 1 FROM alignment_row WHERE row_key = :k LIMIT 1")
    _drop_row_keys(conn, stops, lambda k: conn.execute(held, {"k": k}).first() is None)


def _drop_row_keys(
    conn: Connection, stops: Sequence[tuple[int, bytes]], erased: Callable[[bytes], bool]
) -> None:
    for entry_id, payload in stops:
        data = bytes(payload)
        keys = [data[i : i + ROW_KEY_BYTES] for i in range(0, len(data), ROW_KEY_BYTES)]
        kept = [k for k in keys if not erased(k)]
        if len(kept) != len(keys):  # the entry stays, as the record that a stop was sent
            conn.execute(_SET_PAYLOAD, {"payload": b"".join(kept), "id": entry_id})


def checkpoint(engine: Engine, attempts: int = 5) -> bool:
    """SQLite: move the WAL into the database file and truncate it to zero bytes, so deleted
    rows (zeroed in place by ``secure_delete``) survive in neither file. True when done; a
    no-op elsewhere (PostgreSQL reclaims dead rows with VACUUM)."""
    if engine.dialect.name != "sqlite":
        return True
    for attempt in range(attempts):
        with engine.connect() as conn:
            busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").first()
        if busy is not None and busy[0] == 0:
            return True
        time.sleep(0.05 * (attempt + 1))  # a reader holds an older snapshot: let it finish
    log.warning("WAL checkpoint after erasure did not complete; the next one will")
    return False
