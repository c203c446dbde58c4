"""Where the PKI commands put things, and how parties load them.

Each party's own folder (``accord pki request`` makes the key there; it never leaves):

    <party>/tls.key, request.csr             its key and the request it sends to the operator
    <party>/tls.crt, ca.crt                  its certificate and the network CA (``pki install``)
    <party>/coordinator.vkey                 the coordinator's verifier key
    <node>/auditor.crt                       the auditor's certificate: nodes seal the consent
                                             reference of every data use to its key
    <coordinator>/signer.key                 the coordinator's Ed25519 signing key (secret)
    <coordinator>/members.json               the operator-signed membership list it admits by

The operator's folder (``accord pki ca``): ``ca.key`` (keep it offline), ``ca.crt`` and
``members.json``, which ``pki sign`` updates with every certificate it issues.

``accord pki init --dir DIR`` is the demo's shortcut: ``DIR/ca`` and ``DIR/<party>`` for every
party, laid out as above, all on one machine.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteSigner, NoteVerifier
from accord.crypto.membership import Member, Membership, sign_membership, verify_membership
from accord.crypto.pki import (
    IssuedKeyPair,
    certificate_common_name,
    certificate_fingerprint,
    certificate_role,
    check_issued_by,
    check_party_name,
    check_role,
    default_role,
    issue_party_certificate,
    make_ca,
    make_certificate_request,
    new_private_key,
    public_key_matches,
    read_certificate_request,
    sign_certificate_request,
)
from accord.crypto.use_seal import audit_recipient
from accord.errors import ConfigError
from accord.rpc.roles import COORDINATOR as COORDINATOR  # its party name is its role
from accord.rpc.tls import CA_FILE, CERT_FILE, KEY_FILE
from accord.secrets import read_secret, write_secret

VKEY_FILE = "coordinator.vkey"
SIGNER_FILE = "signer.key"
MEMBERS_FILE = "members.json"
REQUEST_FILE = "request.csr"
CA_KEY_FILE = "ca.key"
AUDITOR_CERT_FILE = "auditor.crt"


def parse_parties(spec: str) -> list[tuple[str, str]]:
    """``pay,shop,label`` or ``pay:feature,crm:label``: (party, role) pairs."""
    pairs = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        party, _, role = item.partition(":")
        pairs.append((check_party_name(party), check_role(role) if role else default_role(party)))
    return pairs


def init_pki(
    directory: Path,
    parties: list[str] | list[tuple[str, str]],
    *,
    network: str,
    force: bool,
    now: dt.datetime,
) -> list[Path]:
    """Create a CA and credentials for each party, and the membership list naming them all;
    return the party folders. ``parties`` are names (role by :func:`default_role`) or pairs."""
    pairs = [p if isinstance(p, tuple) else (p, default_role(p)) for p in parties]
    for party, role in pairs:
        check_party_name(party)
        check_role(role)
    names = [party for party, _ in pairs]
    if COORDINATOR not in names:
        raise ConfigError("--parties must include 'coordinator'")
    if len(set(names)) != len(names):
        raise ConfigError("--parties lists a party twice")
    if (directory / "ca").exists():
        if not force:
            raise ConfigError(f"{directory} already holds a PKI; pass --force to replace it")
        shutil.rmtree(directory)
    ca = make_ca(network, now=now)
    write_secret(directory / "ca" / CA_KEY_FILE, ca.key_pem.decode())
    (directory / "ca" / CA_FILE).write_bytes(ca.cert_pem)
    signer = NoteSigner.generate(f"{network}/coordinator")
    membership = Membership(network, 0)
    folders = []
    for party, role in pairs:
        folder = directory / party
        issued = issue_party_certificate(ca, party, role=role, now=now)
        write_secret(folder / KEY_FILE, issued.key_pem.decode())
        (folder / CERT_FILE).write_bytes(issued.cert_pem)
        (folder / CA_FILE).write_bytes(ca.cert_pem)
        (folder / VKEY_FILE).write_text(signer.verifier.encode() + "\n")
        if party == COORDINATOR:
            write_secret(folder / SIGNER_FILE, signer.encode() + "\n")
        membership = membership.with_member(
            Member(party, role, certificate_fingerprint(issued.cert_pem))
        )
        folders.append(folder)
    # the first auditor is the one nodes seal data uses to (its certificate is public)
    auditor = next((directory / p for p, role in pairs if role == "auditor"), None)
    if auditor is not None:
        for folder in folders:
            shutil.copyfile(auditor / CERT_FILE, folder / AUDITOR_CERT_FILE)
    signed = sign_membership(membership, ca.key_pem)
    (directory / "ca" / MEMBERS_FILE).write_bytes(signed)
    (directory / COORDINATOR / MEMBERS_FILE).write_bytes(signed)
    return folders


# --- each party in its own domain: CA, request, sign, install ----------------------------


def create_ca(directory: Path, *, network: str, now: dt.datetime) -> Path:
    """The operator's folder: the network CA and an empty signed membership list."""
    if (directory / CA_KEY_FILE).exists():
        raise ConfigError(f"{directory} already holds a CA; refusing to replace it")
    ca = make_ca(network, now=now)
    write_secret(directory / CA_KEY_FILE, ca.key_pem.decode())
    (directory / CA_FILE).write_bytes(ca.cert_pem)
    (directory / MEMBERS_FILE).write_bytes(sign_membership(Membership(network, 0), ca.key_pem))
    return directory / CA_FILE


def request_credentials(directory: Path, party: str, role: str, *, network: str) -> Path:
    """A party's key and certificate request in its own folder; returns the request's path.

    The coordinator also makes its ledger signing key here (only the verifier key is shared).
    """
    check_party_name(party)
    check_role(role)
    if (directory / KEY_FILE).exists():
        raise ConfigError(f"{directory / KEY_FILE} exists: this folder already has a key")
    key_pem = new_private_key()
    write_secret(directory / KEY_FILE, key_pem.decode())
    if role == COORDINATOR:
        signer = NoteSigner.generate(f"{network}/coordinator")
        write_secret(directory / SIGNER_FILE, signer.encode() + "\n")
        (directory / VKEY_FILE).write_text(signer.verifier.encode() + "\n")
    path = directory / REQUEST_FILE
    path.write_bytes(make_certificate_request(key_pem, party, role))
    return path


def _load_ca(ca_dir: Path) -> IssuedKeyPair:
    try:
        cert = (ca_dir / CA_FILE).read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{ca_dir / CA_FILE} is missing: make the CA with `accord pki ca`"
        ) from exc
    return IssuedKeyPair(read_secret(ca_dir / CA_KEY_FILE).encode(), cert)


def load_membership(path: Path, ca_cert_pem: bytes) -> Membership:
    try:
        signed = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path} is missing: the operator's `accord pki sign` writes members.json; "
            "copy it into the coordinator's folder"
        ) from exc
    return verify_membership(signed, ca_cert_pem)


def sign_request(ca_dir: Path, request: Path, *, role: str, out: Path, now: dt.datetime) -> Member:
    """Sign a party's request for ``role``, write its certificate to ``out`` and admit the
    certificate in the CA folder's membership list (replacing the party's previous one)."""
    ca = _load_ca(ca_dir)
    try:
        csr_pem = request.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(f"{request} is missing") from exc
    asked = read_certificate_request(csr_pem)
    membership = load_membership(ca_dir / MEMBERS_FILE, ca.cert_pem)
    cert_pem = sign_certificate_request(ca, csr_pem, role=role, now=now)
    member = Member(asked.party, asked.role, certificate_fingerprint(cert_pem))
    updated = membership.with_member(member)  # refuses a second coordinator or label
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(cert_pem)
    (ca_dir / MEMBERS_FILE).write_bytes(sign_membership(updated, ca.key_pem))
    return member


def install_certificate(
    directory: Path,
    cert: Path,
    ca_cert: Path,
    *,
    coordinator_key: Path | None,
    now: dt.datetime,
    auditor_cert: Path | None = None,
) -> tuple[str, str]:
    """Put a signed certificate, the CA, the coordinator's verifier key and the auditor's
    certificate into a party's folder after checking they fit its key and the CA; returns
    (party, role)."""
    cert_pem, ca_pem = cert.read_bytes(), ca_cert.read_bytes()
    check_issued_by(cert_pem, ca_pem, now=now)
    auditor_pem = None
    if auditor_cert is not None:
        auditor_pem = auditor_cert.read_bytes()
        try:
            audit_recipient(auditor_pem, ca_pem, now=now)
        except CryptoError as exc:
            raise ConfigError(f"{auditor_cert}: {exc}") from exc
    if not public_key_matches(cert_pem, read_secret(directory / KEY_FILE).encode()):
        raise ConfigError(f"{cert} is not the certificate of the key in {directory}")
    (directory / CERT_FILE).write_bytes(cert_pem)
    (directory / CA_FILE).write_bytes(ca_pem)
    if coordinator_key is not None:
        NoteVerifier.parse(coordinator_key.read_text())  # refuse garbage before writing it
        if coordinator_key.resolve() != (directory / VKEY_FILE).resolve():
            (directory / VKEY_FILE).write_text(coordinator_key.read_text())
    if auditor_pem is not None:
        (directory / AUDITOR_CERT_FILE).write_bytes(auditor_pem)
    return certificate_common_name(cert_pem), certificate_role(cert_pem)


def load_audit_recipient(party_dir: Path, *, now: dt.datetime) -> bytes | None:
    """The auditor's sealing key from ``auditor.crt`` in a node's folder, checked against the
    folder's CA and the auditor role; None if the folder has no auditor certificate."""
    path = party_dir / AUDITOR_CERT_FILE
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return audit_recipient(pem, (party_dir / CA_FILE).read_bytes(), now=now)
    except CryptoError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


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
