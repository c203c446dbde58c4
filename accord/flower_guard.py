"""Only Accord's own Flower apps run in a party's domain, whoever submits a run.

Flower's SuperLink serves run submission on the same port as its Fleet API, and a Flower app
bundle (FAB) may carry code: without a check, anyone who can reach the SuperLink (the
coordinator itself included) could have every SuperNode run code of its choosing next to the
node's data. The apps Accord runs are installed with Accord on every party; the FAB it submits
carries only ``pyproject.toml`` naming them. So each party runs Flower's app processes through
this guard: before Flower installs a FAB, the guard refuses one that carries any file but its
``pyproject.toml`` (and Flower's ``.info/`` metadata) or that names other components. A refused
task fails in Flower's usual way; no app code from the FAB is imported.

The guard is put in place by a folder of shims (``flwr-clientapp``, ``flwr-serverapp`` and the
other task commands) placed first on the ``PATH`` of the SuperNode or SuperLink; Flower starts
its app processes by those names.
"""

from __future__ import annotations

import importlib
import io
import os
import stat
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

from accord.errors import NotPermitted

SERVERAPP = "accord.coordinator.flower_app:app"
CLIENTAPP = "accord.node.flower_app:app"
COMPONENTS = {"serverapp": SERVERAPP, "clientapp": CLIENTAPP}
# Flower's task commands. Accord runs only these two; the others are refused outright.
GUARDED = {"flwr-clientapp": "clientapp", "flwr-serverapp": "serverapp"}
REFUSED = ("flwr-agentapp", "flwr-simulation", "flwr-model", "flwr-connector")
MAX_FAB_BYTES = 64 * 1024


def check_fab(content: bytes) -> None:
    """Refuse a FAB that is not exactly Accord's: raises :class:`NotPermitted`."""
    if len(content) > MAX_FAB_BYTES:
        raise NotPermitted(f"refused a Flower app of {len(content)} bytes: Accord's is tiny")
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as fab:
            names = fab.namelist()
            extra = [n for n in names if n != "pyproject.toml" and not n.startswith(".info/")]
            if extra:
                raise NotPermitted(
                    f"refused a Flower app that carries files ({', '.join(sorted(extra)[:5])}): "
                    "Accord's apps are installed on every party, never shipped in a run"
                )
            if "pyproject.toml" not in names:
                raise NotPermitted("refused a Flower app without pyproject.toml")
            project = tomllib.loads(fab.read("pyproject.toml").decode())
    except (zipfile.BadZipFile, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise NotPermitted(f"refused a malformed Flower app: {exc}") from exc
    components = project.get("tool", {}).get("flwr", {}).get("app", {}).get("components", {})
    if components != COMPONENTS:
        raise NotPermitted(f"refused a Flower app with components {components!r}: not Accord's")
    dependencies = project.get("project", {}).get("dependencies", [])
    if dependencies:
        raise NotPermitted("refused a Flower app that asks to install dependencies")


def write_shims(folder: Path) -> Path:
    """Write the guard's shims into ``folder`` (put it first on the Flower process's PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    for command in (*GUARDED, *REFUSED):
        shim = folder / command
        shim.write_text(
            f"#!{sys.executable}\n"
            "import sys\n"
            "from accord.flower_guard import run_guarded\n"
            f"sys.exit(run_guarded({command!r}))\n"
        )
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


def guarded_path(folder: Path) -> str:
    """A PATH with the shims first, then this interpreter's scripts, then the inherited PATH."""
    return os.pathsep.join(
        [str(folder), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )


def _checked(install: Callable[..., object]) -> Callable[..., object]:
    def install_checked(content: bytes, *args: object, **kwargs: object) -> object:
        check_fab(content)
        return install(content, *args, **kwargs)

    return install_checked


def run_guarded(command: str) -> int:
    """Run Flower's ``command`` with the FAB check in front of its installation step."""
    if command in REFUSED or command not in GUARDED:
        print(f"accord: {command} is not run in an Accord party's domain", file=sys.stderr)
        return 1
    sys.argv[0] = command  # Flower decides some exit behaviour by its own name
    kind = GUARDED[command]
    # the runtime packages re-export functions under their modules' names: import by path
    module = importlib.import_module(
        "flwr.supernode.runtime.run_clientapp"
        if kind == "clientapp"
        else "flwr.superlink.runtime.run_serverapp"
    )
    setattr(module, "install_from_fab", _checked(getattr(module, "install_from_fab")))  # noqa: B009, B010
    if kind == "clientapp":
        from flwr.supernode.cli import flwr_clientapp

        flwr_clientapp()
    else:
        from flwr.superlink.cli import flwr_serverapp

        flwr_serverapp()
    return 0
