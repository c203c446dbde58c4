"""Training on Flower's Deployment Engine: a SuperLink and one SuperNode per feature node, each
its own process, over TLS with SuperNode authentication, beside the real Accord network.

(A training through the coordinator's standing SuperLink, from the CLI, with every party in
its own namespace: tests/multihost/.)

P8 (a node's host taken down mid-training: the run finishes, the report and the stored model
name the dropped node) is tested across namespaces in tests/multihost/, on the coordinator's
standing SuperLink. Here: the SuperLink turns away a SuperNode whose key the coordinator did
not register.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import make_pki

from accord.coordinator.deployment import Deployment, supernode_auth_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_superlink_refuses_a_supernode_whose_key_is_not_registered(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", ["coordinator", "pay"])
    data_dir = tmp_path / "pay"
    data_dir.mkdir()
    with Deployment(tmp_path / "run", pki / "coordinator") as deployment:
        deployment.start_superlink()
        key = supernode_auth_key(data_dir).with_suffix("")  # made, never registered
        settings = {"data-dir": str(data_dir), "pki": str(pki / "pay"), "coordinator": "x:1"}
        node = deployment.start_supernode("pay", settings, registered=key)
        node.process.wait(timeout=60)
        assert node.process.returncode != 0
        assert "Failed to activate SuperNode" in node.log_path.read_text()
