"""No command a party runs reads another party's folder: the CLI walked, command by command.

Only `accord demo` (every party on one machine, by definition), `accord bench` (its own
throwaway networks) and `accord pki init` (the demo's shortcut that writes every party's
folder) may take a whole network's layout. Every other command takes at most its own party's
folder; the library pieces that lay out a whole network are used by those commands only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import click
import typer

from accord.cli.main import app

CLI = Path(__file__).resolve().parents[2] / "accord" / "cli"
NETWORK_OPTIONS = {"--network-dir", "--workdir"}
# what lays out or opens every party's folder at once
NETWORK_LAYOUT = {"NetworkLayout", "LocalNetwork", "init_pki", "train_network"}
ALLOWED_COMMANDS = {("demo",), ("bench",), ("pki", "init")}
ALLOWED_FUNCTIONS = {
    ("demo_cmd.py", "*"),
    ("bench_cmd.py", "*"),
    ("pki_cmd.py", "init"),
    ("train_cmd.py", "demo_train"),
    ("train_cmd.py", "_train_on_deployment_engine"),  # demo train --runtime deployment
}


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        ctx = click.Context(command)  # the top level builds its commands when asked
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            yield from _commands(sub, (*path, name))


def _options(path: tuple[str, ...]) -> set[str]:
    command: click.Command = typer.main.get_command(app)
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None
        command = found
    return {o for p in command.params if isinstance(p, click.Option) for o in p.opts}


def _allowed(path: tuple[str, ...]) -> bool:
    return any(path[: len(prefix)] == prefix for prefix in ALLOWED_COMMANDS)


def test_only_the_demo_and_the_benches_take_a_whole_networks_folder() -> None:
    walked = list(_commands(typer.main.get_command(app)))
    assert ("train",) in walked and ("demo", "train") in walked  # the walk reaches both
    offenders = {
        " ".join(path): sorted(_options(path) & NETWORK_OPTIONS)
        for path in walked
        if path and not _allowed(path) and _options(path) & NETWORK_OPTIONS
    }
    assert offenders == {}
    assert "--network-dir" in _options(("demo", "train"))  # the rule is not vacuous


def test_the_network_layout_is_used_only_by_the_demo_bench_and_pki_init() -> None:
    offenders = []
    for module in sorted(CLI.glob("*.py")):
        tree = ast.parse(module.read_text())
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
            if (module.name, "*") in ALLOWED_FUNCTIONS or (
                module.name,
                fn.name,
            ) in ALLOWED_FUNCTIONS:
                continue
            names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
            names |= {
                a.name for n in ast.walk(fn) if isinstance(n, ast.ImportFrom) for a in n.names
            }
            if names & NETWORK_LAYOUT:
                offenders.append(f"{module.name}:{fn.name} uses {sorted(names & NETWORK_LAYOUT)}")
    assert offenders == []
