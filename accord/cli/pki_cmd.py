"""`accord pki`: the network's CA, each party's own key and certificate, and the membership list.

Each party keeps its key: `pki request` makes the key and a request in the party's own folder,
the operator's `pki sign` returns only a certificate (and admits it in the membership list),
and `pki install` puts the certificate beside the key. `pki init` is the demo's shortcut that
makes everything for every party in one folder.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from accord.crypto.pki import certificate_common_name, certificate_role
from accord.pki_layout import (
    CA_KEY_FILE,
    MEMBERS_FILE,
    create_ca,
    init_pki,
    install_certificate,
    load_membership,
    parse_parties,
    request_credentials,
    sign_request,
)
from accord.rpc.tls import CA_FILE, CERT_FILE

app = typer.Typer(help="Make and inspect the network's PKI.", no_args_is_help=True)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@app.command("init")
def init(
    directory: Path = typer.Option(..., "--dir", help="Folder to create the PKI in."),
    parties: str = typer.Option(
        "coordinator,pay,shop,social,label,auditor,marketer",
        "--parties",
        help="Comma-separated party names, each optionally name:role (roles: coordinator, "
        "feature, label, marketer, auditor; a party named after a role has it, others are "
        "feature nodes).",
    ),
    network: str = typer.Option("accord.local", "--network", help="The network's name."),
    force: bool = typer.Option(False, "--force", help="Replace an existing PKI in --dir."),
) -> None:
    """Demo shortcut: a CA, every party's key and certificate, and the membership list."""
    folders = init_pki(directory, parse_parties(parties), network=network, force=force, now=_now())
    table = Table(title=f"PKI for {network} in {directory}")
    table.add_column("party")
    table.add_column("role")
    table.add_column("folder (hand it to that party)")
    for folder in folders:
        cert = (folder / CERT_FILE).read_bytes()
        table.add_row(certificate_common_name(cert), certificate_role(cert), str(folder))
    Console().print(table)


@app.command("ca")
def ca(
    directory: Path = typer.Option(..., "--dir", help="The operator's folder for the CA."),
    network: str = typer.Option("accord.local", "--network", help="The network's name."),
) -> None:
    """The operator: make the network's CA and an empty signed membership list."""
    cert = create_ca(directory, network=network, now=_now())
    Console().print(
        f"CA for {network}: hand {cert} to every party; keep {directory / CA_KEY_FILE} offline"
    )


@app.command("request")
def request(
    directory: Path = typer.Option(..., "--dir", help="This party's own folder."),
    party: str = typer.Option(..., "--party", help="This party's name (its channel)."),
    role: str = typer.Option(
        ..., "--role", help="coordinator, feature, label, marketer or auditor."
    ),
    network: str = typer.Option(
        "accord.local", "--network", help="The network's name (names the coordinator's key)."
    ),
) -> None:
    """A party: make your key and a certificate request; send only the request."""
    path = request_credentials(directory, party, role, network=network)
    Console().print(
        f"key kept in {directory}; send {path} to the network's operator "
        f"(`accord pki sign --request {path.name} --role {role}`)"
    )


@app.command("sign")
def sign(
    ca_dir: Path = typer.Option(..., "--ca", help="The operator's CA folder (`pki ca`)."),
    request_file: Path = typer.Option(..., "--request", help="The party's request.csr."),
    role: str = typer.Option(..., "--role", help="The role you grant; must be the one asked."),
    out: Path = typer.Option(..., "--out", help="Where to write the party's certificate."),
) -> None:
    """The operator: sign a request with its role bound in, and admit it in members.json."""
    member = sign_request(ca_dir, request_file, role=role, out=out, now=_now())
    Console().print(
        f"signed {member.party} as {member.role} (certificate {member.fingerprint[:16]}…) "
        f"into {out}; hand back {out} and {ca_dir / CA_FILE}; copy "
        f"{ca_dir / MEMBERS_FILE} to the coordinator's folder"
    )


@app.command("install")
def install(
    directory: Path = typer.Option(..., "--dir", help="This party's own folder."),
    cert: Path = typer.Option(..., "--cert", help="The certificate the operator signed."),
    ca_cert: Path = typer.Option(..., "--ca-cert", help="The network's CA certificate."),
    coordinator_key: Path | None = typer.Option(
        None, "--coordinator-key", help="The coordinator's coordinator.vkey (public)."
    ),
    auditor_cert: Path | None = typer.Option(
        None,
        "--auditor-cert",
        help="A node: the auditor's certificate (public); the node seals the consent "
        "reference of every data use to it.",
    ),
) -> None:
    """A party: check the certificate fits your key and the CA, and put it in your folder."""
    party, role = install_certificate(
        directory,
        cert,
        ca_cert,
        coordinator_key=coordinator_key,
        now=_now(),
        auditor_cert=auditor_cert,
    )
    Console().print(f"{directory} now holds {party}'s certificate ({role})")


@app.command("members")
def members(
    file: Path = typer.Option(..., "--file", help="A members.json to show."),
    ca_cert: Path = typer.Option(..., "--ca-cert", help="The network's CA certificate."),
) -> None:
    """Verify and show a membership list."""
    membership = load_membership(file, ca_cert.read_bytes())
    table = Table(title=f"{membership.network} members, version {membership.version}")
    for header in ("party", "role", "certificate (SHA-256)"):
        table.add_column(header)
    for m in membership.members:
        table.add_row(m.party, m.role, m.fingerprint)
    Console().print(table)
