"""`accord coordinator`: run the coordinator."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Run the coordinator.", no_args_is_help=True)


@app.command("serve")
def serve(
    data_dir: Path = typer.Option(Path("coordinator-data"), "--data-dir", help="State folder."),
    pki: Path = typer.Option(..., "--pki", help="The coordinator's folder from `accord pki init`."),
    listen: str = typer.Option("127.0.0.1:50051", "--listen", help="host:port (port 0: any)."),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: SQLite in --data-dir)."
    ),
    members: Path | None = typer.Option(
        None,
        "--members",
        help="The operator-signed membership list (default: members.json in --pki); "
        "replace the file to admit a party, no restart needed.",
    ),
    metrics_listen: str | None = typer.Option(
        None,
        "--metrics-listen",
        help="host:port to serve Prometheus metrics on, plain HTTP (port 0: any); off if unset.",
    ),
    fleet_listen: str | None = typer.Option(
        None,
        "--fleet-listen",
        help="host:port of the standing Flower SuperLink that feature nodes' SuperNodes join "
        "(TLS with this coordinator's certificate; port 0: any); no training here if unset.",
    ),
    fleet_advertise: str | None = typer.Option(
        None,
        "--fleet-advertise",
        help="host:port nodes dial for the Fleet when it differs from --fleet-listen; the host "
        "must be a name in this coordinator's certificate (e.g. its party name).",
    ),
) -> None:
    """Serve the registry, ledger, alignment and scoring until SIGTERM."""
    from accord.coordinator.app import CoordinatorConfig, run_coordinator

    run_coordinator(
        CoordinatorConfig(
            data_dir=data_dir,
            pki_dir=pki,
            listen=listen,
            db_url=db,
            members=members,
            metrics_listen=metrics_listen,
            fleet_listen=fleet_listen,
            fleet_advertise=fleet_advertise,
        )
    )
