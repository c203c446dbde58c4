"""Build a node's training participant from its settings (a SuperNode's --node-config).

Settings: ``channel``, ``data-dir``, ``pki`` (the party folder), ``coordinator`` (host:port) and
optionally ``db``. One participant per process and channel, reused across messages.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from accord.errors import ConfigError, NotReady
from accord.ledger_writer import LedgerWriter
from accord.node.gate import ConsentGate
from accord.node.keys import load_or_create_keys
from accord.node.service import Node
from accord.node.training import GatedStoreData, SqlStateStore, TrainingParticipant
from accord.pki_layout import COORDINATOR, load_audit_recipient, load_coordinator_verifier
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

_PARTICIPANTS: dict[tuple[str, ...], TrainingParticipant] = {}
REQUIRED = ("channel", "data-dir", "pki", "coordinator")


def participant_from_settings(settings: Mapping[str, object]) -> TrainingParticipant:
    missing = [k for k in REQUIRED if k not in settings]
    if missing:
        raise ConfigError(f"node settings lack {', '.join(missing)} (give them as --node-config)")
    key = tuple(str(settings[k]) for k in (*REQUIRED, "db") if k in settings)
    if key in _PARTICIPANTS:
        return _PARTICIPANTS[key]
    channel, data_dir, pki = (
        str(settings["channel"]),
        Path(str(settings["data-dir"])),
        Path(str(settings["pki"])),
    )
    credentials = PartyCredentials.load(pki)
    engine = make_engine(str(settings.get("db") or sqlite_url(data_dir / "node.db")))
    upgrade(engine, "node")
    keys = load_or_create_keys(data_dir, channel)
    ledger = LedgerWriter(credentials, str(settings["coordinator"]), COORDINATOR)
    node = Node(
        engine,
        channel=channel,
        role="feature",
        keys=keys,
        coordinator_key=load_coordinator_verifier(pki),
        network_ca=credentials.ca_pem,
    )
    view = node.registry()
    if view is None:
        raise NotReady(f"{channel!r} has not accepted a registry yet: start the node first")
    peers = {n.channel: n.kx_key for n in view.nodes if n.role == "feature"}
    gate = ConsentGate(
        engine, channel, ledger, auditor=load_audit_recipient(pki, now=dt.datetime.now(dt.UTC))
    )
    participant = TrainingParticipant(
        channel, GatedStoreData(engine, gate), SqlStateStore(engine), keys.kx, peers
    )
    _PARTICIPANTS[key] = participant
    return participant
