"""Only Accord's own Flower apps run in a party's domain, whoever submits a run (the
SuperLink's run submission shares the Fleet port and has no client authentication).

The guard (accord.flower_guard) sits in front of Flower's FAB installation on every party;
the ServerApp at the coordinator's standing SuperLink also needs a one-use ticket that only the
coordinator's Training service writes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk

from accord.coordinator.deployment import RUN_CONFIG_DEFAULTS, app_pyproject
from accord.coordinator.flower_app import redeem_ticket
from accord.errors import NotPermitted
from accord.flower_guard import REFUSED, check_fab, guarded_path, write_shims

EVIL_MODULE = """
from pathlib import Path
from flwr.clientapp import ClientApp
Path(__file__).with_name("ran").write_text("foreign code ran")
app = ClientApp()
"""


def fab(folder: Path, pyproject: str, files: dict[str, str] | None = None) -> bytes:
    """A FAB as `flwr run` builds it (Flower's own builder)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(pyproject)
    for name, text in (files or {}).items():
        (folder / name).write_text(text)
    return build_fab_from_disk(folder)


def accord_pyproject() -> str:
    return app_pyproject(RUN_CONFIG_DEFAULTS)


def test_accords_own_app_is_accepted(tmp_path: Path) -> None:
    check_fab(fab(tmp_path / "app", accord_pyproject()))


def test_an_app_that_ships_code_is_refused(tmp_path: Path) -> None:
    evil = accord_pyproject().replace("accord.node.flower_app:app", "evil:app")
    with pytest.raises(NotPermitted, match="carries files"):
        check_fab(fab(tmp_path / "evil", evil, {"evil.py": EVIL_MODULE}))


def test_an_app_naming_other_installed_components_is_refused(tmp_path: Path) -> None:
    # no shipped code, but a component of something else installed on the party
    other = accord_pyproject().replace("accord.node.flower_app:app", "accord.cli.main:app")
    with pytest.raises(NotPermitted, match="not Accord's"):
        check_fab(fab(tmp_path / "other", other))


def test_an_app_asking_for_dependencies_is_refused(tmp_path: Path) -> None:
    deps = accord_pyproject().replace("dependencies = []", 'dependencies = ["requests"]')
    with pytest.raises(NotPermitted, match="dependencies"):
        check_fab(fab(tmp_path / "deps", deps))


@pytest.mark.parametrize(
    "content",
    [b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 100, b"x" * 70_000],
    ids=["empty", "text", "broken-zip", "oversized"],
)
def test_malformed_bundles_are_refused(content: bytes) -> None:
    with pytest.raises(NotPermitted):
        check_fab(content)


def test_a_bundle_with_a_bad_pyproject_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("pyproject.toml", "this is [not toml")
    with pytest.raises(NotPermitted, match="malformed"):
        check_fab(buffer.getvalue())


def test_the_shims_stand_in_for_flowers_task_commands(tmp_path: Path) -> None:
    shims = write_shims(tmp_path / "guard")
    env = {**os.environ, "PATH": guarded_path(shims)}
    # Flower starts app processes by name: the names resolve to the guard
    for command in ("flwr-clientapp", "flwr-serverapp", *REFUSED):
        found = subprocess.run(
            ["sh", "-c", f"command -v {command}"], capture_output=True, text=True, env=env
        )
        assert found.stdout.strip() == str(shims / command)
    # task kinds Accord never runs are refused outright
    done = subprocess.run([str(shims / "flwr-simulation")], capture_output=True, text=True)
    assert done.returncode == 1 and "not run in an Accord party's domain" in done.stderr


def test_a_run_without_the_coordinators_ticket_is_refused(tmp_path: Path) -> None:
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    for config in ({}, {"ticket": ""}, {"ticket": "../../etc/passwd"}, {"ticket": "abc123"}):
        with pytest.raises(NotPermitted):
            redeem_ticket(config, tickets)


def test_a_ticket_sets_the_paths_and_is_used_once(tmp_path: Path) -> None:
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    (tickets / "t0k3n").write_text(
        json.dumps({"coordinator-data": "/theirs", "report": "/theirs/report.json"})
    )
    submitted = {"ticket": "t0k3n", "coordinator-data": "/attacker", "report": "/etc/x", "seed": 3}
    merged = redeem_ticket(submitted, tickets)
    # the submitter's paths give way to the coordinator's own; training settings stay
    assert merged["coordinator-data"] == "/theirs" and merged["report"] == "/theirs/report.json"
    assert merged["seed"] == 3
    with pytest.raises(NotPermitted, match="used already"):
        redeem_ticket(submitted, tickets)


@pytest.mark.parametrize(
    ("command", "cli", "runtime", "entry"),
    [
        (
            "flwr-clientapp",
            "flwr.supernode.cli",
            "flwr.supernode.runtime.run_clientapp",
            "flwr_clientapp",
        ),
        (
            "flwr-serverapp",
            "flwr.superlink.cli",
            "flwr.superlink.runtime.run_serverapp",
            "flwr_serverapp",
        ),
    ],
)
def test_the_guarded_command_checks_before_flower_installs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    cli: str,
    runtime: str,
    entry: str,
) -> None:
    """The name Flower's app process installs through is the checked one once the guard runs."""
    import importlib

    from accord.flower_guard import run_guarded

    evil = fab(
        tmp_path / "evil",
        accord_pyproject().replace("accord.node.flower_app:app", "evil:app"),
        {"evil.py": EVIL_MODULE},
    )
    installed: list[bytes] = []
    module = importlib.import_module(runtime)
    monkeypatch.setattr(module, "install_from_fab", lambda content, **_: installed.append(content))

    def flower_entry() -> None:  # stands in for Flower's process: it installs the run's FAB
        module.install_from_fab(evil, skip_prompt=True)

    monkeypatch.setattr(importlib.import_module(cli), entry, flower_entry)
    monkeypatch.setattr("sys.argv", [command])
    with pytest.raises(NotPermitted, match="carries files"):
        run_guarded(command)
    assert installed == []  # Flower's installer never saw the bundle
