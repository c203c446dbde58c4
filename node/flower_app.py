"""The node's ClientApp as a module-level object, for Flower's Deployment Engine.

A SuperNode started with ``--node-config 'channel="pay" data-dir="…" pki="…" coordinator="…"'``
runs ``accord.node.flower_app:app`` for every message of a run (a new process per message):
the participant is built from those settings over the node's own store, through its consent
gate, with its X25519 key and the peers' keys from the registry the node verified.
"""

from __future__ import annotations

from accord.node.flower_client import make_client_app
from accord.node.participant import participant_from_settings

app = make_client_app(lambda context: participant_from_settings(context.node_config))

__all__ = ["app"]
