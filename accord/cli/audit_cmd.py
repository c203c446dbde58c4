"""`accord audit`: what a compliance officer runs against the ledger. Trusts only signatures."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from accord.audit import (
    AuditFailure,
    LedgerClient,
    VerifiedCheckpoint,
    read_checkpoint_file,
    read_proof_file,
    verify_extends,
    write_json,
)
from accord.auditing.entries import AuditClient, auditor_opener
from accord.auditing.report import ReportData, check_writable, write_report
from accord.auditing.trail import read_opening, subject_trail
from accord.auditing.violations import find_violations, proofs_summary
from accord.auditing.witnesses import (
    WitnessResult,
    WitnessStatus,
    check_quorum_size,
    grpc_witness,
    request_cosignature,
    require_quorum,
    witness_status,
    witnesses_from_registry,
)
from accord.cli.registry_cmd import fetch_registry
from accord.consent.proofs import proof_document, verify_consent_proof
from accord.crypto.cosignature import add_signatures, cosignatures
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteVerifier
from accord.crypto.merkle import InclusionProof
from accord.crypto.statusmap import StatusProof
from accord.errors import InvalidInput
from accord.pki_layout import COORDINATOR, load_coordinator_verifier
from accord.rpc.tls import PartyCredentials

app = typer.Typer(
    help="Audit the consent ledger: checkpoints, witnesses, proofs, violations, trails, reports.",
    no_args_is_help=True,
)

COORDINATOR_OPT = typer.Option("127.0.0.1:50051", "--coordinator", help="host:port.")
PKI_OPT = typer.Option(..., "--pki", help="Your party folder from `accord pki init`.")


@contextmanager
def ledger_client(coordinator: str, pki: Path) -> Iterator[LedgerClient]:
    credentials = PartyCredentials.load(pki)
    with credentials.channel(coordinator, COORDINATOR) as channel:
        yield LedgerClient(channel, load_coordinator_verifier(pki), coordinator)


@contextmanager
def audit_client(coordinator: str, pki: Path) -> Iterator[AuditClient]:
    credentials = PartyCredentials.load(pki)
    with credentials.channel(coordinator, COORDINATOR) as channel:
        yield AuditClient(channel, load_coordinator_verifier(pki), coordinator)


def _show(checkpoint: VerifiedCheckpoint, title: str, cosigned_by: list[str] | None = None) -> None:
    table = Table(title=title, show_header=False)
    table.add_row("origin", checkpoint.checkpoint.origin)
    table.add_row("size", str(checkpoint.checkpoint.size))
    table.add_row("root", base64.b64encode(checkpoint.checkpoint.root_hash).decode())
    for line in checkpoint.checkpoint.extensions:
        table.add_row("extension", line)
    if cosigned_by:
        table.add_row("cosigned by", ", ".join(cosigned_by))
    Console().print(table)


def _witness_table(results: list[WitnessResult], quorum: int) -> Table:
    table = Table(title=f"Witnesses (a checkpoint needs {quorum} cosignatures)")
    for header in ("witness", "held", "result", "detail"):
        table.add_column(header)
    for r in results:
        colour = "green" if r.cosignature else "red" if r.fork else "yellow"
        table.add_row(
            r.witness,
            "?" if r.held_size is None else str(r.held_size),
            f"[{colour}]{r.status}[/{colour}]",
            (
                f"at {_when(r.cosignature.timestamp)}"
                if r.cosignature is not None
                else r.problem or ""
            ),
        )
    return table


def _checkpoint_file(path: Path, verifier: NoteVerifier) -> VerifiedCheckpoint:
    """A signed checkpoint from a file, verified; any unreadable file is one readable line."""
    try:
        return read_checkpoint_file(path, verifier)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from exc


def _when(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command("checkpoint")
def checkpoint(
    coordinator: str = COORDINATOR_OPT,
    pki: Path = PKI_OPT,
    save: Path | None = typer.Option(None, "--save", help="Keep the signed note in this file."),
    witnesses: int = typer.Option(
        0,
        "--witnesses",
        help="Accept the checkpoint only with this many valid cosignatures from the registry's "
        "nodes (each node witnesses the log); 0 skips witnessing.",
    ),
    note: Path | None = typer.Option(
        None,
        "--note",
        help="Witness this signed checkpoint instead of the latest (e.g. one another party was "
        "shown).",
    ),
) -> None:
    """Fetch the latest checkpoint, verify its signature, and optionally have it cosigned."""
    cosigned_by: list[str] = []
    with audit_client(coordinator, pki) as client:
        latest = _checkpoint_file(note, client.verifier) if note else client.checkpoint()
        if witnesses:
            nodes = witnesses_from_registry(fetch_registry(coordinator, pki))
            check_quorum_size(witnesses, nodes)
            credentials = PartyCredentials.load(pki)
            results = []
            for node in nodes:
                with grpc_witness(credentials, node) as link:
                    results.append(
                        request_cosignature(link, node, latest, client.verifier, client.consistency)
                    )
            Console().print(_witness_table(results, witnesses))
            require_quorum(results, witnesses, latest.checkpoint)
            lines = [r.cosignature.signature for r in results if r.cosignature is not None]
            cosigned_by = [r.witness for r in results if r.cosignature is not None]
            latest = VerifiedCheckpoint(latest.checkpoint, add_signatures(latest.note, lines))
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(latest.note)
    title = "Checkpoint (signature verified)" if note else "Latest checkpoint (signature verified)"
    _show(latest, title, cosigned_by)


@app.command("verify")
def verify(
    old: Path = typer.Option(..., "--old", help="A checkpoint you saved earlier."),
    coordinator: str = COORDINATOR_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Prove the current log extends OLD, and re-hash every entry up to the latest checkpoint."""
    with ledger_client(coordinator, pki) as client:
        held = read_checkpoint_file(old, client.verifier)
        report = verify_extends(client, held)
    Console().print(
        f"[green]ok[/green]: checkpoint {report.new_size} extends your checkpoint "
        f"{report.old_size} (consistency proof verified); {report.entries_checked} entries "
        "re-hashed to the signed root"
    )


@app.command("prove")
def prove(
    index: int = typer.Option(..., "--index", help="Entry index."),
    out: Path | None = typer.Option(None, "--out", help="Write the proof JSON here."),
    coordinator: str = COORDINATOR_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """An inclusion proof of one entry against the latest checkpoint (transparency-dev JSON)."""
    with ledger_client(coordinator, pki) as client:
        latest = client.checkpoint()
        proof = client.inclusion(index, latest.checkpoint)
    text = proof.to_json()
    if out:
        write_json(out, text)
        Console().print(
            f"inclusion proof of entry {index} in tree {proof.tree_size} verified; wrote {out}"
        )
    else:
        Console().print_json(data=text)


@app.command("export")
def export(
    out: Path = typer.Option(..., "--out", help="Folder for checkpoint and proofs."),
    old: Path | None = typer.Option(
        None, "--old", help="Also prove consistency from this checkpoint."
    ),
    start: int = typer.Option(0, "--start", help="First entry to prove."),
    count: int | None = typer.Option(None, "--count", help="How many entries (default: all)."),
    coordinator: str = COORDINATOR_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Write the checkpoint, inclusion proofs and a consistency proof, each verified first."""
    with ledger_client(coordinator, pki) as client:
        latest = client.checkpoint()
        out.mkdir(parents=True, exist_ok=True)
        (out / "checkpoint").write_text(latest.note)
        if old is not None:
            held = read_checkpoint_file(old, client.verifier)
            new, consistency = client.prove_extends(held)
            try:
                consistency.verify()
            except CryptoError as exc:
                raise AuditFailure(f"consistency from {held.checkpoint.size}: {exc}") from exc
            (out / "checkpoint").write_text(new.note)
            latest = new
            write_json(
                out / "consistency" / f"{consistency.size1}-{consistency.size2}.json",
                consistency.to_json(),
            )
        size = latest.checkpoint.size
        stop = size if count is None else min(size, start + count)
        with Progress() as progress:
            task = progress.add_task("inclusion proofs", total=max(stop - start, 0))
            for index in range(start, stop):
                proof = client.inclusion(index, latest.checkpoint)
                write_json(out / "inclusion" / f"{index}.json", proof.to_json())
                progress.advance(task)
    Console().print(
        f"exported checkpoint {size} and {max(stop - start, 0)} inclusion proofs to {out}"
    )


@app.command("verify-proof")
def verify_proof(
    file: Path = typer.Option(..., "--file", help="A proof JSON (inclusion or consistency)."),
    checkpoint_file: Path = typer.Option(
        ..., "--checkpoint", help="The signed checkpoint it is for."
    ),
    pki: Path = PKI_OPT,
) -> None:
    """Offline: verify a proof file against a signed checkpoint; nothing is fetched."""
    held = read_checkpoint_file(checkpoint_file, load_coordinator_verifier(pki))
    proof = read_proof_file(file)
    size, root = (
        (proof.tree_size, proof.root)
        if isinstance(proof, InclusionProof)
        else (proof.size2, proof.root2)
    )
    if (size, root) != (held.checkpoint.size, held.checkpoint.root_hash):
        raise AuditFailure(
            f"{file} is for tree {size}, not for the checkpoint in {checkpoint_file} "
            f"(size {held.checkpoint.size}) or its root differs"
        )
    try:
        proof.verify()
    except CryptoError as exc:
        raise AuditFailure(f"{file}: {exc}") from exc
    Console().print(f"[green]ok[/green]: {file} verifies against checkpoint {held.checkpoint.size}")


@app.command("consent-proof")
def consent_proof(
    consent: str = typer.Option(..., "--consent", help="The consent commitment (base64)."),
    out: Path = typer.Option(..., "--out", help="Write the proof document here."),
    coordinator: str = COORDINATOR_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Fetch "consent C's status as of the latest checkpoint" as an offline-verifiable file."""
    try:
        key = base64.b64decode(consent, validate=True)
    except binascii.Error as exc:
        raise InvalidInput("--consent must be base64") from exc
    with ledger_client(coordinator, pki) as client:
        reply = client.consent_status(key)
    doc = proof_document(
        reply.checkpoint.note,
        key,
        reply.status_json,
        StatusProof(
            tuple(bytes(s) for s in reply.siblings),
            bytes(reply.terminal_key) or None,
            bytes(reply.terminal_value_hash) or None,
        ),
    )
    write_json(out, doc)
    Console().print(f"wrote the status proof of consent {consent[:12]}… to {out}")


@app.command("consent")
def consent_check(
    proof: Path = typer.Option(..., "--proof", help="A consent-status proof document."),
    pki: Path = PKI_OPT,
) -> None:
    """Offline: is the consent valid and unrevoked as of the signed checkpoint in PROOF?"""
    try:
        doc = json.loads(proof.read_text())
    except FileNotFoundError as exc:
        raise InvalidInput(f"{proof} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidInput(f"{proof} is not JSON: {exc}") from exc
    try:
        valid = verify_consent_proof(doc, load_coordinator_verifier(pki))
    except CryptoError as exc:
        raise AuditFailure(f"{proof}: {exc}") from exc
    Console().print(
        f"[green]valid[/green]: consent for {', '.join(valid.status.purposes)} at "
        f"{valid.status.node}, granted at ledger index {valid.status.granted_index}, not revoked "
        f"as of checkpoint {valid.checkpoint.size}, expires {valid.status.expires}"
    )


@app.command("violations")
def violations(
    checkpoint_file: Path = typer.Option(
        ..., "--checkpoint", help="A signed checkpoint (from `audit checkpoint --save`)."
    ),
    coordinator: str = COORDINATOR_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Replay the ledger up to CHECKPOINT and check every data use against the consent state."""
    with audit_client(coordinator, pki) as client:
        held = _checkpoint_file(checkpoint_file, client.verifier)
        events = client.verified_events(held.checkpoint)
    report = find_violations(events, auditor_opener(PartyCredentials.load(pki).key_pem))
    console = Console()
    if report.unreadable:
        console.print(
            f"[yellow]{len(report.unreadable)} entries are not Accord events[/yellow]: "
            + ", ".join(str(i) for i, _ in report.unreadable[:20])
        )
    if not report.clean:
        table = Table(title=f"Uses without a valid consent (checkpoint {held.checkpoint.size})")
        for header in ("entry", "node", "purpose", "what is wrong"):
            table.add_column(header, overflow="fold")
        for v in report.violations:
            table.add_row(str(v.index), v.node, v.purpose, v.problem)
        console.print(table)
        entries = report.violating_entries()
        shown = ", ".join(str(i) for i in entries[:20]) + (" …" if len(entries) > 20 else "")
        console.print(proofs_summary(report))
        raise AuditFailure(
            f"{len(report.violations)} of {report.uses_checked} uses had no valid consent, in "
            f"ledger entries {shown}"
        )
    console.print(
        f"[green]no violations[/green]: {report.uses_checked} uses in {report.use_events} "
        f"data-use entries checked against {report.consents_granted} consents "
        f"({report.consents_revoked} revoked), replaying {report.entries} entries re-hashed to "
        f"checkpoint {held.checkpoint.size}; {proofs_summary(report)}"
    )


@app.command("trail")
def trail(
    opening: Path = typer.Option(
        ...,
        "--opening",
        help="The customer's commitment opening: the 'opening' object of `accord subject "
        "export` (JSON with node, localRef, salt), or the whole export.",
    ),
    coordinator: str = COORDINATOR_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """Every consent event and data use for one customer, each with its inclusion proof."""
    held_opening = read_opening(opening)
    subject = held_opening.subject()
    with audit_client(coordinator, pki) as client:
        latest = client.checkpoint()
        found = subject_trail(
            client.verified_events(latest.checkpoint),
            subject,
            held_opening.use_tag_key(),
            auditor_opener(PartyCredentials.load(pki).key_pem),
        )
        if not found:
            raise AuditFailure(
                f"no entry up to checkpoint {latest.checkpoint.size} names the customer this "
                f"opening opens at node {held_opening.node!r}: check its node, localRef and salt"
            )
        for index in sorted({e.index for e in found}):
            client.inclusion(index, latest.checkpoint)
    table = Table(
        title=f"Trail at node {held_opening.node} (checkpoint {latest.checkpoint.size}, every "
        "inclusion proof verified)"
    )
    for header in ("entry", "time", "event", "purpose", "node", "detail"):
        table.add_column(header, overflow="fold")
    for e in found:
        table.add_row(str(e.index), _when(e.at), e.event, ", ".join(e.purposes), e.node, e.detail)
    Console().print(table)


@app.command("report")
def report(
    out: Path = typer.Option(..., "--out", help="Folder for report.html and the checkpoint."),
    checkpoint_file: Path | None = typer.Option(
        None, "--checkpoint", help="Report on this signed checkpoint (default: the latest)."
    ),
    old: Path | None = typer.Option(
        None, "--old", help="Also prove the log extends this earlier checkpoint."
    ),
    coordinator: str = COORDINATOR_OPT,
    pki: Path = PKI_OPT,
) -> None:
    """A self-contained HTML report: checkpoint, witnesses, violations, consents, uses, policies."""
    check_writable(out)
    with audit_client(coordinator, pki) as client:
        held = (
            _checkpoint_file(checkpoint_file, client.verifier)
            if checkpoint_file
            else client.checkpoint()
        )
        cp = held.checkpoint
        consistency = None
        if old is not None:
            older = _checkpoint_file(old, client.verifier).checkpoint
            if older.size > cp.size:
                raise InvalidInput(
                    f"{old} (size {older.size}) is newer than the reported checkpoint {cp.size}"
                )
            client.consistency(older.size, cp.size, older.root_hash, cp.root_hash)
            consistency = (
                f"Consistent: checkpoint {cp.size} extends your checkpoint {older.size} "
                "(consistency proof verified)."
            )
        events = client.verified_events(cp)
        nodes = witnesses_from_registry(fetch_registry(coordinator, pki))
        credentials = PartyCredentials.load(pki)
        statuses: list[WitnessStatus] = []
        for node in nodes:
            with grpc_witness(credentials, node) as link:
                statuses.append(witness_status(link, node, cp, client.verifier, client.consistency))
    try:
        cosigned = cosignatures(held.note, [n.key for n in nodes])
    except CryptoError as exc:
        raise AuditFailure(f"a cosignature on the checkpoint does not verify: {exc}") from exc
    found = find_violations(events, auditor_opener(credentials.key_pem))
    path = write_report(
        out,
        ReportData(
            checkpoint=cp,
            note=held.note,
            generated_at=int(time.time()),
            events=events,
            violations=found,
            consistency=consistency,
            cosignatures=cosigned,
            witnesses=statuses,
        ),
    )
    verdict = (
        "[green]no violations[/green]"
        if found.clean
        else f"[red]{len(found.violations)} violations[/red]"
    )
    Console().print(
        f"wrote {path}: checkpoint {cp.size}, {found.uses_checked} uses checked, {verdict}, "
        f"{len(cosigned)} cosignatures; {proofs_summary(found)}"
    )
