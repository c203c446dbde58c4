"""`accord`: one command line for every party. Thin: parse, call the library, print.

Every :class:`accord.errors.AccordError` and every refused RPC ends the program with one
readable line on stderr and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

import click
import grpc
import typer

from accord.cli import (
    align_cmd,
    audit_cmd,
    backup_cmd,
    bench_cmd,
    consent_cmd,
    coordinator_cmd,
    data_cmd,
    db_cmd,
    demo_cmd,
    node_cmd,
    pki_cmd,
    registry_cmd,
    score_cmd,
    train_cmd,
    wallet_cmd,
)
from accord.cli.state import STATE
from accord.errors import AccordError
from accord.log import LogFormat, configure_logging
from accord.rpc.client import describe_rpc_error

app = typer.Typer(
    name="accord",
    help="Accord: a federated customer-data network that keeps data where it lives.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(pki_cmd.app, name="pki")
app.add_typer(coordinator_cmd.app, name="coordinator")
app.add_typer(node_cmd.app, name="node")
app.add_typer(registry_cmd.app, name="registry")
app.add_typer(data_cmd.app, name="data")
app.add_typer(db_cmd.app, name="db")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(bench_cmd.app, name="bench")
app.add_typer(consent_cmd.consent_app, name="consent")
app.add_typer(consent_cmd.subject_app, name="subject")
app.add_typer(wallet_cmd.app, name="wallet")
# `demo` runs every party on this machine, so it alone may read every party's folder
demo_app = typer.Typer(no_args_is_help=False)
demo_app.callback(invoke_without_command=True)(demo_cmd.demo)
demo_app.command("train")(train_cmd.demo_train)
app.add_typer(demo_app, name="demo")
app.command("align")(align_cmd.align)
app.command("train")(train_cmd.train)
app.command("score")(score_cmd.score)
app.command("backup")(backup_cmd.backup)
app.command("restore")(backup_cmd.restore)


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
