"""Storage on SQLite and PostgreSQL: migrations build the models' schema; the stores behave."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from accord.coordinator.models import CoordinatorTable
from accord.coordinator.registry import NodeRegistry
from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.crypto.pki import IssuedKeyPair, issue_party_certificate
from accord.data.channel_file import ChannelTable
from accord.errors import Conflict, InvalidInput, NotPermitted, NotReady
from accord.node import store
from accord.node.keys import NodeKeys
from accord.node.models import NodeTable
from accord.node.service import Node
from accord.registry import NodeDescriptor, sign_exchange_keys, verify_registry
from accord.rpc.tls import CA_FILE, CERT_FILE, KEY_FILE
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("role", "metadata"), [("node", NodeTable.metadata), ("coordinator", CoordinatorTable.metadata)]
)
def test_alembic_cli_builds_the_models_schema(db_url: str, role: str, metadata) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ROOT / "alembic.ini"),
            "-n",
            role,
            "-x",
            f"db={db_url}",
            "upgrade",
            "head",
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == [], f"migrations and models disagree: {diff}"
    assert tables == set(metadata.tables) | {"alembic_version"}


def test_sqlite_is_durable_by_configuration(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL


def _table(channel: str = "pay", n: int = 5) -> ChannelTable:
    return ChannelTable(
        channel=channel,
        refs=[f"{channel}-{i}" for i in range(n)],
        phones=[f"+88691234{i:04d}" for i in range(n)],
        emails=[f"p{i}@example.com" for i in range(n)],
        columns={"PAY_0": "int", "LIMIT_BAL": "float"},
        values=np.array([[i, np.nan if i == 2 else 1000.0 * i] for i in range(n)]),
    )


def test_node_store_imports_and_replaces(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "node")
    assert store.import_table(engine, _table(n=5), "pay") == 5
    assert store.customer_count(engine) == 5
    assert [c.name for c in store.schema(engine)] == ["PAY_0", "LIMIT_BAL"]
    store.import_table(engine, _table(n=3), "pay")
    assert store.customer_count(engine) == 3
    with pytest.raises(InvalidInput, match="channel 'shop'"):
        store.import_table(engine, _table("shop"), "pay")
    assert store.customer_count(engine) == 3
    engine.dispose()


def _signed(node: NodeDescriptor, key_pem: bytes, ca_pem: bytes) -> NodeDescriptor:
    """``node`` with its keys signed by the certificate key ``key_pem``."""
    statement = sign_exchange_keys(
        key_pem,
        ca_pem=ca_pem,
        channel=node.channel,
        role=node.role,
        identity_key=node.identity_key,
        kx_key=node.kx_key,
    )
    return dataclasses.replace(node, key_statement=statement)


def _descriptor(
    pki_dir: Path,
    channel: str,
    role: str = "feature",
    endpoint: str = "127.0.0.1:1",
    keys: NodeKeys | None = None,
) -> NodeDescriptor:
    from accord.registry import FeatureColumn

    keys = keys or NodeKeys(NoteSigner.generate(channel), KeyAgreementKey.generate())
    node = NodeDescriptor(
        channel=channel,
        role=role,
        identity_key=keys.identity.verifier.public_key,
        kx_key=keys.kx.public_key,
        certificate_pem=(pki_dir / channel / CERT_FILE).read_bytes(),
        schema=(FeatureColumn("x", "float"),),
        endpoint=endpoint,
        key_statement=b"",
    )
    return _signed(node, (pki_dir / channel / KEY_FILE).read_bytes(), _ca(pki_dir))


def _ca(pki_dir: Path) -> bytes:
    return (pki_dir / "ca" / CA_FILE).read_bytes()


def test_registry_versions_signatures_and_rules(db_url: str, pki_dir: Path) -> None:
    engine = make_engine(db_url)
    upgrade(engine, "coordinator")
    signer = NoteSigner.generate("accord.test/coordinator")
    registry = NodeRegistry(engine, signer, ca_pem=_ca(pki_dir), clock=lambda: 1_700_000_000.0)
    assert registry.view().version == 1
    assert registry.view().nodes == ()
    pay = _descriptor(pki_dir, "pay")
    cert = (pki_dir / "pay" / CERT_FILE).read_bytes()
    v2 = verify_registry(
        registry.register(pay, peer="pay", peer_cert_pem=cert), signer.verifier, ca_pem=_ca(pki_dir)
    )
    assert v2.version == 2
    assert v2.node("pay") == pay
    # the same registration again changes nothing
    assert registry.register(pay, peer="pay", peer_cert_pem=cert) == registry.current()
    assert registry.view().version == 2
    with pytest.raises(NotPermitted, match="issued to 'shop'"):
        registry.register(pay, peer="shop", peer_cert_pem=cert)
    with pytest.raises(InvalidInput, match="differs from the certificate"):
        registry.register(
            pay, peer="pay", peer_cert_pem=(pki_dir / "shop" / CERT_FILE).read_bytes()
        )
    label = _descriptor(pki_dir, "label", role="label")
    registry.register(
        label, peer="label", peer_cert_pem=(pki_dir / "label" / CERT_FILE).read_bytes()
    )
    shop_as_label = _descriptor(pki_dir, "shop", role="label")
    with pytest.raises(NotPermitted, match="may register only as feature"):
        registry.register(
            shop_as_label, peer="shop", peer_cert_pem=(pki_dir / "shop" / CERT_FILE).read_bytes()
        )
    # a second label certificate (the membership list would refuse it first): still refused
    ca = IssuedKeyPair(
        (pki_dir / "ca" / "ca.key").read_bytes(), (pki_dir / "ca" / "ca.crt").read_bytes()
    )
    crm_pair = issue_party_certificate(ca, "crm", role="label", now=dt.datetime.now(dt.UTC))
    crm_cert = crm_pair.cert_pem
    crm = _signed(
        dataclasses.replace(label, channel="crm", certificate_pem=crm_cert),
        crm_pair.key_pem,
        _ca(pki_dir),
    )
    with pytest.raises(NotPermitted, match="already holds the label role"):
        registry.register(crm, peer="crm", peer_cert_pem=crm_cert)
    assert [n.channel for n in registry.view().nodes] == ["label", "pay"]
    # a restart reads the same state back
    again = NodeRegistry(engine, signer, ca_pem=_ca(pki_dir))
    assert again.current() == registry.current()
    engine.dispose()


def test_node_accepts_only_newer_verified_registries(
    db_url: str, pki_dir: Path, tmp_path: Path
) -> None:
    coord_engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(coord_engine, "coordinator")
    signer = NoteSigner.generate("accord.test/coordinator")
    registry = NodeRegistry(coord_engine, signer, ca_pem=_ca(pki_dir))
    v1 = registry.current()
    keys = NodeKeys(NoteSigner.generate("pay"), KeyAgreementKey.generate())
    registry.register(
        _descriptor(pki_dir, "pay", keys=keys),
        peer="pay",
        peer_cert_pem=(pki_dir / "pay" / CERT_FILE).read_bytes(),
    )
    v2 = registry.current()

    engine = make_engine(db_url)
    upgrade(engine, "node")
    node = Node(
        engine,
        channel="pay",
        role="feature",
        keys=keys,
        coordinator_key=signer.verifier,
        network_ca=_ca(pki_dir),
    )
    assert node.accept_registry(v2, sender="coordinator") == 2
    assert node.accept_registry(v2, sender="coordinator") == 2
    with pytest.raises(NotReady, match="roll back"):
        node.accept_registry(v1, sender="coordinator")
    with pytest.raises(NotPermitted):
        node.accept_registry(v2, sender="shop")
    forged = NoteSigner.generate("accord.test/coordinator")
    from accord.proto.v1 import registry_pb2
    from accord.registry import sign_registry

    doc = registry_pb2.RegistryDocument()
    doc.ParseFromString(v2.document)
    doc.version = 3
    with pytest.raises(Exception, match="does not verify"):
        node.accept_registry(sign_registry(doc, forged), sender="coordinator")
    doc.version = 2
    doc.issued_at += 1
    with pytest.raises(Conflict, match="equivocating"):
        node.accept_registry(sign_registry(doc, signer), sender="coordinator")
    view = node.registry()
    assert view is not None
    assert view.version == 2
    engine.dispose()
