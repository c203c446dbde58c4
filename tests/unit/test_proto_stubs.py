"""The committed stubs match the .proto files; the check notices a change made without them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_proto.py"


def _check(proto_root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--proto-root", str(proto_root)],
        capture_output=True,
        text=True,
    )


def test_committed_stubs_are_fresh() -> None:
    result = _check(ROOT / "proto")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_fails_when_a_proto_changes_without_regeneration(tmp_path: Path) -> None:
    copy = tmp_path / "proto"
    shutil.copytree(ROOT / "proto", copy, ignore=shutil.ignore_patterns("__pycache__"))
    node_proto = copy / "accord" / "v1" / "node.proto"
    node_proto.write_text(
        node_proto.read_text().replace(
            "message GetNodeInfoRequest {}", "message GetNodeInfoRequest { string extra = 1; }"
        )
    )
    result = _check(copy)
    assert result.returncode == 1
    assert "node_pb2" in result.stdout
    assert "make proto" in result.stdout


def test_services_are_in_package_accord_v1() -> None:
    from accord.proto.v1 import node_pb2, registry_pb2

    assert registry_pb2.DESCRIPTOR.package == "accord.v1"
    assert registry_pb2.DESCRIPTOR.name == "accord/v1/registry.proto"
    assert "NodeService" in node_pb2.DESCRIPTOR.services_by_name
