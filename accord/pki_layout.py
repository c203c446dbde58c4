"""Where ``accord pki init`` puts things, and how parties load them.

DIR/ca/ca.crt, DIR/ca/ca.key           the network's CA (keep ca.key offline)
DIR/<party>/ca.crt, tls.crt, tls.key   each party's mTLS credentials
DIR/<party>/coordinator.vkey           the coordinator's verifier key, for every party
DIR/coordinator/signer.key             the coordinator's Ed25519 signing key (secret)
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from accord.crypto.keys import NoteSigner, NoteVerifier
from accord.crypto.pki import check_party_name, issue_party_certificate, make_ca
from accord.errors import ConfigError
from accord.rpc.tls import CA_FILE, CERT_FILE, KEY_FILE
from accord.secrets import read_secret, write_secret

COORDINATOR = "coordinator"
VKEY_FILE = "coordinator.vkey"
SIGNER_FILE = "signer.key"


def init_pki(
    directory: Path, parties: list[str], *, network: str, force: bool, now: dt.datetime
) -> list[Path]:
    """Create a CA and credentials for each party; return the party folders."""
    for party in parties:
        check_party_name(party)
    if COORDINATOR not in parties:
        raise ConfigError("--parties must include 'coordinator'")
    if len(set(parties)) != len(parties):
        raise ConfigError("--parties lists a party twice")
    if (directory / "ca").exists():
        if not force:
            raise ConfigError(f"{directory} already holds a PKI; pass --force to replace it")
        shutil.rmtree(directory)
    ca = make_ca(network, now=now)
    write_secret(directory / "ca" / "ca.key", ca.key_pem.decode())
    (directory / "ca" / CA_FILE).write_bytes(ca.cert_pem)
    signer = NoteSigner.generate(f"{network}/coordinator")
    folders = []
    for party in parties:
        folder = directory / party
        issued = issue_party_certificate(ca, party, now=now)
        write_secret(folder / KEY_FILE, issued.key_pem.decode())
        (folder / CERT_FILE).write_bytes(issued.cert_pem)
        (folder / CA_FILE).write_bytes(ca.cert_pem)
        (folder / VKEY_FILE).write_text(signer.verifier.encode() + "\n")
        if party == COORDINATOR:
            write_secret(folder / SIGNER_FILE, signer.encode() + "\n")
        folders.append(folder)
    return folders


def load_coordinator_verifier(party_dir: Path) -> NoteVerifier:
    path = party_dir / VKEY_FILE
    try:
        return NoteVerifier.parse(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path} is missing: every party folder from `accord pki init` has it"
        ) from exc


def load_coordinator_signer(party_dir: Path) -> NoteSigner:
    return NoteSigner.parse(read_secret(party_dir / SIGNER_FILE))
