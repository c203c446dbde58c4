"""The node's local store. Everything here stays inside the node's own domain."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, LargeBinary, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class NodeTable(SQLModel, registry=registry()):
    """Base of the node's tables; its metadata is the node's schema only."""


class Customer(NodeTable, table=True):
    """One customer as this channel knows them: its own reference, identifiers, columns."""

    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    # The channel's own customer reference: meaningful only inside this node.
    local_ref: str = Field(index=True, unique=True, max_length=128)
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=256)
    # The node's columns for this customer, as a JSON object keyed by schema column name.
    features: str
    imported_at: int
    # The normalised identifiers mapped to curve points for PSI (run-independent, so computed
    # once at import). As sensitive as the identifiers themselves: they leave only blinded.
    psi_phone: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    psi_email: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class SchemaColumn(NodeTable, table=True):
    """A column this node offers; name and type are all the network ever learns of it."""

    __tablename__ = "schema_column"

    name: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=16)
    position: int


class AcceptedRegistry(NodeTable, table=True):
    """A signed registry this node verified against the coordinator key and accepted."""

    __tablename__ = "accepted_registry"

    version: int = Field(primary_key=True)
    document: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    accepted_at: int


class SubjectSalt(NodeTable, table=True):
    """The per-customer secret behind every commitment; destroying it is erasure."""

    __tablename__ = "subject_salt"

    local_ref: str = Field(primary_key=True, max_length=128)
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: int


class ConsentRecordRow(NodeTable, table=True):
    """An ISO/IEC TS 27560-style consent record, as this channel captured it."""

    __tablename__ = "consent_record"

    record_id: str = Field(primary_key=True, max_length=64)
    local_ref: str = Field(index=True, max_length=128)
    # Canonical JSON of the terms (controller, purposes, categories, recipients, processing,
    # legal basis, jurisdiction, notice version, collection method, times); hashed into the
    # consent commitment.
    terms: str
    purposes: str  # JSON list, for the gate's lookups
    given_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(max_length=16)  # pending | granted | revoked
    subject_commitment: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    consent_commitment: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    grant_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoked_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoke_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    revoke_reason: str | None = Field(default=None, max_length=16)


class ConsentEventRow(NodeTable, table=True):
    """The status history of a consent record (given, revoked, ...)."""

    __tablename__ = "consent_event"

    id: int | None = Field(default=None, primary_key=True)
    record_id: str = Field(index=True, max_length=64)
    status: str = Field(max_length=16)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))
    ledger_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class DataUseRow(NodeTable, table=True):
    """One use of one customer's data for one purpose in one session, as logged to the ledger."""

    __tablename__ = "data_use"
    __table_args__ = (UniqueConstraint("session", "purpose", "local_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    session: str = Field(max_length=64)
    purpose: str = Field(max_length=32)
    local_ref: str = Field(index=True, max_length=128)
    record_id: str = Field(max_length=64)
    consent_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    ledger_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    at: int = Field(sa_column=Column(BigInteger, nullable=False))


class AlignmentRow(NodeTable, table=True):
    """This node's opaque row key for one of its customers in one alignment run."""

    __tablename__ = "alignment_row"

    run_id: str = Field(primary_key=True, max_length=64)
    row_key: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    local_ref: str = Field(index=True, max_length=128)


class NetworkBlock(NodeTable, table=True):
    """A customer the network told this node to stop using (revoked at another channel)."""

    __tablename__ = "network_block"

    local_ref: str = Field(primary_key=True, max_length=128)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))


class WitnessCheckpoint(NodeTable, table=True):
    """The newest checkpoint of one log this node cosigned as a witness (one row per origin).

    ``note`` is the checkpoint as the log signed it; a witness never cosigns a checkpoint of
    the same log that is older than, or inconsistent with, this one.
    """

    __tablename__ = "witness_checkpoint"

    origin: str = Field(primary_key=True, max_length=255)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str
    cosigned_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class TrainingState(NodeTable, table=True):
    """This node's bottom model mid-run (saved after every message of a training run)."""

    __tablename__ = "training_state"

    run_id: str = Field(primary_key=True, max_length=64)
    state: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AnsweredRound(NodeTable, table=True):
    """A training round this node answered: each round id is answered once (P2: two answers
    to one round would hand the coordinator their difference)."""

    __tablename__ = "answered_round"

    round_id: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    run_id: str = Field(max_length=64, index=True)


class ScoringSet(NodeTable, table=True):
    """The one set of sources a customer is scored from under one model, as this node first
    took part (P2): a sum over another set could be differenced with it into one node's
    embedding (S{A,B} + S{A,C} - S{B,C} = 2·e_A), so this node never contributes to another.
    A node that answered alone (its own estimate) holds the set of itself."""

    __tablename__ = "scoring_set"

    model_id: str = Field(primary_key=True, max_length=64)
    local_ref: str = Field(primary_key=True, max_length=128)
    participants: str = Field(max_length=512)  # sorted channel names, comma-separated
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class SpendSumRelease(NodeTable, table=True):
    """A group sum of own spend estimates this channel released: one per alignment run, asked
    again only with the same named customers (then answered with the same number). Groups are
    kept as digests of local references, to refuse a later group that differs from one already
    summed by fewer than the minimum (two such sums would difference into a few customers)."""

    __tablename__ = "spend_sum_release"

    alignment_run: str = Field(primary_key=True, max_length=64)
    model_id: str = Field(max_length=64)  # the model it was first asked for (params kept there)
    named: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # sorted 32-byte digests
    summed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # sorted 32-byte digests
    total: float
    customers: int
    fitted_on: int
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerOutboxRow(NodeTable, table=True):
    """Something this node owes the coordinator: a ledger event or a network stop.

    Written in the same transaction as the local change it reports, so a crash or an outage
    cannot lose it; delivered in ``id`` order and kept, marked ``sent``, as the node's record.
    """

    __tablename__ = "ledger_outbox"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=24)  # consent.granted | consent.revoked | network.stop
    state: str = Field(max_length=8, index=True)  # pending | sent | failed
    record_id: str | None = Field(default=None, max_length=64, index=True)
    # The consent commitment the ledger can be asked about (grants and revocations).
    consent: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # The canonical ledger entry, byte for byte what is appended; row keys for a network stop.
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=512)
    sent_at: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    ledger_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class BottomModel(NodeTable, table=True):
    """A finished bottom model, with its preprocessing, kept for scoring."""

    __tablename__ = "bottom_model"

    model_id: str = Field(primary_key=True, max_length=64)
    run_id: str = Field(max_length=64)
    state: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Purchase(NodeTable, table=True):
    """One purchase from the channel's own log; features are derived from these only inside
    the consent gate (:mod:`accord.node.gate`)."""

    __tablename__ = "purchase"

    id: int | None = Field(default=None, primary_key=True)
    local_ref: str = Field(index=True, max_length=128)
    day: int = Field(sa_column=Column(BigInteger, nullable=False))  # days since 1970-01-01
    items: int
    amount: float


class PurchaseWindow(NodeTable, table=True):
    """Present when the node's columns derive from its purchase log: the cut-off they use."""

    __tablename__ = "purchase_window"

    id: int = Field(default=1, primary_key=True)
    as_of_day: int = Field(sa_column=Column(BigInteger, nullable=False))  # days since 1970-01-01


class OwnSpendRow(NodeTable, table=True):
    """This channel's own spend model (BG/NBD, Gamma-Gamma and exponent parameters, see
    :mod:`accord.scoring.ltv.fallback`) for one LTV model of the network, fitted on its
    consented customers' purchase features: how it answers alone for a customer no other
    channel holds. Parameters only, never a customer's summary."""

    __tablename__ = "own_spend_model"

    model_id: str = Field(primary_key=True, max_length=64)
    alignment_run: str = Field(max_length=64)
    params: str  # JSON: {"bgnbd": {...}, "gammaGamma": {...}, "exponent": ...}
    horizon_days: int
    customers: int  # how many customers the fit saw
    # the one group sum this node released for the model: how many customers it covered
    summed_customers: int
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerView(NodeTable, table=True):
    """The newest checkpoint of the coordinator's ledger this node verified (one row per log).

    The node's ledger watch (:mod:`accord.node.ledger_watch`) moves it forward only along a
    verified consistency proof, so the checkpoints it has seen form one append-only history.
    """

    __tablename__ = "ledger_view"

    origin: str = Field(primary_key=True, max_length=255)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str
    verified_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class LedgerAlarm(NodeTable, table=True):
    """Evidence that the coordinator's ledger went back or forked: a checkpoint this node held
    and a signed one that does not extend it. Kept until an operator clears it."""

    __tablename__ = "ledger_alarm"

    origin: str = Field(primary_key=True, max_length=255)
    source: str = Field(primary_key=True, max_length=16)  # watch | witness
    kind: str = Field(max_length=16)  # rollback | fork
    detail: str = Field(max_length=512)
    held_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    held_note: str
    served_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    served_note: str
    detected_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_seen_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    times: int = 1


class UsedCredential(NodeTable, table=True):
    """A scoring presentation this node accepted, by its nonce and phase: each is accepted
    once, also across restarts (:mod:`accord.node.replay_cache`). Kept until the credential
    can no longer be accepted; the nonce is random per credential and names no customer."""

    __tablename__ = "used_credential"

    nonce: str = Field(primary_key=True, max_length=64)
    phase: str = Field(primary_key=True, max_length=16)
    expires_at: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
