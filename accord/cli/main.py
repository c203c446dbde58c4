"""`accord`: one command line for every party. Thin: parse, call the library, print.

Every :class:`accord.errors.AccordError` and every refused RPC ends the program with one
readable line on stderr and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

import click
import grpc
import typer
from typer.core import TyperGroup

from accord.cli.state import STATE
from accord.errors import AccordError
from accord.log import LogFormat, configure_logging
from accord.rpc.client import describe_rpc_error

# Each command's module is imported when that command runs, not at every start: `accord consent
# grant` or a `node serve` process then loads neither matplotlib (audit reports), pandas (data
# import) nor torch (training) unless it uses them, and every party's processes start faster.
_GROUPS = {  # name -> the module (and attribute, if not `app`) of its Typer
    "pki": "accord.cli.pki_cmd",
    "coordinator": "accord.cli.coordinator_cmd",
    "node": "accord.cli.node_cmd",
    "registry": "accord.cli.registry_cmd",
    "data": "accord.cli.data_cmd",
    "db": "accord.cli.db_cmd",
    "audit": "accord.cli.audit_cmd",
    "bench": "accord.cli.bench_cmd",
    "consent": "accord.cli.consent_cmd:consent_app",
    "subject": "accord.cli.consent_cmd:subject_app",
    "wallet": "accord.cli.wallet_cmd",
}
_COMMANDS = {  # name -> the module and function of a single command
    "align": "accord.cli.align_cmd:align",
    "train": "accord.cli.train_cmd:train",
    "score": "accord.cli.score_cmd:score",
    "backup": "accord.cli.backup_cmd:backup",
    "restore": "accord.cli.backup_cmd:restore",
}


def _load(target: str, default: str) -> object:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute or default)


def _demo() -> typer.Typer:
    from accord.cli import demo_cmd, train_cmd

    # `demo` runs every party on this machine, so it alone may read every party's folder
    demo_app = typer.Typer(no_args_is_help=False)
    demo_app.callback(invoke_without_command=True)(demo_cmd.demo)
    demo_app.command("train")(train_cmd.demo_train)
    return demo_app


def _built(cmd_name: str, add: Callable[[typer.Typer], object]) -> click.Command:
    """The click command Typer would have built had ``add`` been applied to the top level."""
    holder = typer.Typer(add_completion=False)
    holder.callback()(lambda: None)  # a group, so that its one command keeps its own shape
    add(holder)
    group = typer.main.get_command(holder)
    assert isinstance(group, click.Group)
    return group.commands[cmd_name]


class _Commands(TyperGroup):
    """The top level: lists every command, and builds one only when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_GROUPS, *_COMMANDS, "demo"})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _GROUPS:
            sub = _load(_GROUPS[cmd_name], "app")
            assert isinstance(sub, typer.Typer)
            return _built(cmd_name, lambda top: top.add_typer(sub, name=cmd_name))
        if cmd_name in _COMMANDS:
            function = _load(_COMMANDS[cmd_name], "")
            assert callable(function)
            return _built(cmd_name, lambda top: top.command(cmd_name)(function))
        if cmd_name == "demo":
            return _built(cmd_name, lambda top: top.add_typer(_demo(), name=cmd_name))
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="accord",
    help="Accord: a federated customer-data network that keeps data where it lives.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_Commands,
)


@app.callback()
def _global(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    log_format: str = typer.Option("console", "--log-format", help="console or json."),
) -> None:
    STATE.debug = debug
    fmt: LogFormat = "json" if log_format == "json" else "console"
    configure_logging(log_level, fmt)


def _fail(message: str) -> int:
    print(f"accord: error: {message}", file=sys.stderr)
    return 1


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (tests call this directly)."""
    STATE.debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False, prog_name="accord")
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return _fail("aborted")
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except AccordError as exc:
        if STATE.debug:
            raise
        return _fail(str(exc))
    except grpc.RpcError as exc:
        if STATE.debug:
            raise
        return _fail(describe_rpc_error(exc, "the remote party"))
    except KeyboardInterrupt:
        return _fail("interrupted")
    return 0


def main() -> None:
    sys.exit(run())
