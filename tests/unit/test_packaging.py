"""The distribution: every package folder is listed, and a real wheel installs and imports."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAPPED = {
    "accord": "accord",
    "accord.proto": "proto",
    "accord.crypto": "crypto",
    "accord.node": "node",
    "accord.coordinator": "coordinator",
    "accord.scoring": "scoring",
}


def _config() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed() -> None:
    config = _config()
    assert config["package-dir"] == MAPPED
    found = set()
    for package, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join([package, *rel.parts]))
    assert set(config["packages"]) == found


@pytest.mark.slow
def test_wheel_installs_and_imports(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("accord-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "accord/proto/v1/registry_pb2.py",
        "accord/proto/accord/v1/registry.proto",
        "accord/node/migrations/env.py",
        "accord/node/migrations/script.py.mako",
        "accord/coordinator/migrations/versions/0001_initial_coordinator_schema.py",
    ):
        assert expected in names, expected
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import accord.crypto, accord.proto, accord.node, accord.coordinator, accord.scoring\n"
        "import accord.node.service, accord.coordinator.registry\n"
        "from accord.store.engine import make_engine\n"
        "from accord.store.migrate import upgrade\n"
        "import sys\n"
        "for m in (accord.crypto, accord.node, accord.coordinator, accord.proto, accord.scoring):\n"
        "    assert m.__file__.startswith(sys.argv[1]), m.__file__\n"
        "upgrade(make_engine('sqlite:///' + sys.argv[1] + '/n.db'), 'node')\n"
        "upgrade(make_engine('sqlite:///' + sys.argv[1] + '/c.db'), 'coordinator')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_servers_start_without_loading_the_model_libraries() -> None:
    """A coordinator or node process serves before torch, scikit-learn or pandas load (they
    load in the background, before a request needs them): start-up is what a restart after a
    crash costs."""
    import subprocess
    import sys

    code = (
        "import sys, accord.coordinator.app, accord.node.app; "
        "print(sorted(m for m in ('torch', 'sklearn', 'pandas', 'flwr') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
