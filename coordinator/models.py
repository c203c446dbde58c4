"""The coordinator's store. It holds no identifier and no feature value of any customer."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class CoordinatorTable(SQLModel, registry=registry()):
    """Base of the coordinator's tables; its metadata is the coordinator's schema only."""


class RegisteredNode(CoordinatorTable, table=True):
    __tablename__ = "registered_node"

    channel: str = Field(primary_key=True, max_length=32)
    role: str = Field(max_length=16)
    identity_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    kx_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    certificate_pem: str
    # JSON list of {"name", "type"}: names and types, never values.
    feature_schema: str
    endpoint: str = Field(max_length=256)
    registered_at: int
    # the node's certificate-key signature over its keys (accord.crypto.key_binding), as sent
    key_statement: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class RegistryVersion(CoordinatorTable, table=True):
    """Every registry document the coordinator signed, newest = highest version."""

    __tablename__ = "registry_version"

    version: int = Field(primary_key=True)
    document: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    issued_at: int


class LedgerEntryRow(CoordinatorTable, table=True):
    """One ledger entry: opaque bytes (never personal data) at a fixed index."""

    __tablename__ = "ledger_entry"

    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    appended_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    appended_by: str = Field(max_length=64)


class LedgerNodeRow(CoordinatorTable, table=True):
    """The hash of one complete subtree: (level, index) as RFC 9162 numbers them."""

    __tablename__ = "ledger_node"

    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class LedgerCheckpointRow(CoordinatorTable, table=True):
    """Every checkpoint the coordinator signed, kept so auditors' old ones can be proven."""

    __tablename__ = "ledger_checkpoint"

    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str
    published_at: int = Field(sa_column=Column(BigInteger, nullable=False))


class AlignmentRun(CoordinatorTable, table=True):
    """One alignment run: who took part, how many matched, and its ledger record."""

    __tablename__ = "alignment_run"

    run_id: str = Field(primary_key=True, max_length=64)
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    label_node: str = Field(max_length=32)
    identifier: str = Field(max_length=16)
    # JSON: per channel candidates and matches, label candidates, row counts.
    summary: str
    ledger_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class AlignedRow(CoordinatorTable, table=True):
    """One aligned customer's key at one node. ``row_key`` is the label node's key (the row)."""

    __tablename__ = "aligned_row"

    run_id: str = Field(primary_key=True, max_length=64)
    row_key: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    node: str = Field(primary_key=True, max_length=32)
    node_row_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False, index=True))


class RunLabel(CoordinatorTable, table=True):
    """The label node's outcome for one row of a run."""

    __tablename__ = "run_label"

    run_id: str = Field(primary_key=True, max_length=64)
    row_key: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    label: float


class BlockedRow(CoordinatorTable, table=True):
    """An aligned row whose customer revoked consent somewhere: no node may use it."""

    __tablename__ = "blocked_row"

    run_id: str = Field(primary_key=True, max_length=64)
    row_key: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    at: int = Field(sa_column=Column(BigInteger, nullable=False))
    by_node: str = Field(max_length=32)


class ModelVersion(CoordinatorTable, table=True):
    """A trained model: the coordinator's half (top model, calibration) and its provenance."""

    __tablename__ = "model_version"

    model_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # "trust" or "ltv"
    alignment_run: str = Field(max_length=64)
    training_run: str = Field(max_length=64)
    created_at: int = Field(sa_column=Column(BigInteger, nullable=False))
    nodes: str  # JSON list of feature nodes, in the top model's source order
    config: str  # JSON split-learning configuration
    top_state: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    calibrator: str  # JSON
    metrics: str  # JSON
    report: str  # JSON run report (rounds, dropouts, bytes)
    consents_as_of: int = Field(sa_column=Column(BigInteger, nullable=False))
    ledger_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    # LTV only, JSON {channel: factor}: how each channel's own spend estimate is scaled when
    # it alone holds a customer (see accord.coordinator.own_spend); "{}" when none.
    own_channel_scales: str = Field(default="{}")


class PolicyVersion(CoordinatorTable, table=True):
    """A decision policy the coordinator took into use, with its ledger record."""

    __tablename__ = "policy_version"

    digest: str = Field(primary_key=True, max_length=64)
    version: str = Field(max_length=64)
    ledger_index: int = Field(sa_column=Column(BigInteger, nullable=False))
    activated_at: int = Field(sa_column=Column(BigInteger, nullable=False))
