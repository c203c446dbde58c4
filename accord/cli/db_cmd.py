"""`accord db`: schema migrations by hand (servers also upgrade themselves at start)."""

from __future__ import annotations

import typer

from accord.errors import ConfigError
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(
    role: str = typer.Option(..., "--role", help="node or coordinator."),
    db: str = typer.Option(..., "--db", help="Database URL."),
) -> None:
    """Bring a party's database schema to the newest revision."""
    if role not in ("node", "coordinator"):
        raise ConfigError(f"--role must be 'node' or 'coordinator', not {role!r}")
    upgrade(make_engine(db), role)  # type: ignore[arg-type]
    typer.echo(f"{role} schema is at head")
