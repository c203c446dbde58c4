"""`accord demo`: the whole story on one machine, on synthetic data and embedded defaults.

PKI; a coordinator and four nodes (pay, shop, social, the brand's label node) as separate
processes; consents (some customers decline, some decline network uses); a PSI alignment; a
federated training on Flower; a dozen scored requests at two touchpoints; one revocation taking
effect across the network; an independent audit of the ledger. Ends with a summary table.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn
from rich.table import Table

from accord.audit import LedgerClient, read_checkpoint_file, verify_extends
from accord.auditing.entries import AuditClient, auditor_opener
from accord.auditing.violations import find_violations
from accord.cli.align_cmd import run_alignment, summary_table
from accord.cli.consent_cmd import import_consents
from accord.cli.progress import counted_columns
from accord.cli.registry_cmd import fetch_registry, registry_table
from accord.data.channel_file import read_channel_table
from accord.data.uci import CHANNELS, LABEL_CHANNEL, split_by_channel, synthesize
from accord.errors import AccordError, Unavailable
from accord.launcher import LocalNetwork
from accord.node import store
from accord.pki_layout import COORDINATOR, init_pki, load_coordinator_verifier
from accord.proto.v1 import consent_pb2, consent_pb2_grpc, node_pb2, node_pb2_grpc, scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade
from accord.touchpoint import ask, subject

ROLES = {**{c: "feature" for c in CHANNELS}, LABEL_CHANNEL: "label"}
PARTIES = ["coordinator", *ROLES, "auditor", "marketer"]
TOUCHPOINTS = ("checkout", "product-page")


def _wait_registry_everywhere(
    network: LocalNetwork, pki: Path, want_nodes: int
) -> list[node_pb2.NodeInfo]:
    """Wait until every node has verified and accepted a registry listing all nodes."""
    credentials = PartyCredentials.load(pki / COORDINATOR)
    give_up = time.monotonic() + 30
    while True:
        infos = []
        for channel in ROLES:
            with credentials.channel(network.parties[channel].endpoint, channel) as ch:
                infos.append(
                    node_pb2_grpc.NodeServiceStub(ch).GetNodeInfo(
                        node_pb2.GetNodeInfoRequest(), timeout=5
                    )
                )
        if all(i.registry_nodes == want_nodes for i in infos):
            return infos
        if time.monotonic() > give_up:
            raise Unavailable("the registry did not reach every node within 30 s")
        time.sleep(0.2)


def demo(
    ctx: typer.Context,
    workdir: Path = typer.Option(Path(".demo"), "--workdir", help="Scratch folder (replaced)."),
    customers: int = typer.Option(3_000, "--customers", help="Synthetic brand customers."),
) -> None:
    """Run the whole network story on this machine and print what happened
    (`accord demo train`: train again on a network laid out on this machine)."""
    if ctx.invoked_subcommand is not None:
        return
    from accord.launch.train_job import NetworkLayout, train_network  # loads torch, Flower

    console = Console()
    started = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    pki = workdir / "pki"
    network = LocalNetwork(workdir=workdir, pki_dir=pki)
    summary: list[tuple[str, str]] = []
    columns = (SpinnerColumn(), *counted_columns())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("starting the network", total=4)
            split = split_by_channel(synthesize(customers), "realistic")
            split.write(workdir / "data", consents_seed=2)
            progress.advance(task)
            init_pki(pki, PARTIES, network="accord.local", force=True, now=dt.datetime.now(dt.UTC))
            for channel in ROLES:
                engine = make_engine(sqlite_url(network.node_dir(channel) / "node.db"))
                upgrade(engine, "node")
                store.import_table(
                    engine, read_channel_table(workdir / "data" / f"{channel}.csv"), channel
                )
                engine.dispose()
            progress.advance(task)
            network.start_coordinator()
            for channel, role in ROLES.items():
                network.start_node(channel, role)
            for channel in ROLES:
                network.parties[channel].wait_ready()
            progress.advance(task)
            infos = _wait_registry_everywhere(network, pki, len(ROLES))
            progress.advance(task)
        endpoint = network.parties[COORDINATOR].endpoint
        view = fetch_registry(endpoint, pki / LABEL_CHANNEL)
        console.rule("[bold]1. The network")
        console.print(
            registry_table(view, f"Registry v{view.version}, signature verified by every node")
        )
        summary.append(
            ("nodes registered and verified", f"{sum(i.registry_nodes == 4 for i in infos)} of 4")
        )

        console.rule("[bold]2. Consent, captured at each channel")
        table = Table(title="Consent decisions (commitments on the ledger, never identities)")
        for header in ("node", "customers", "consents recorded", "declined or no answer"):
            table.add_column(header, justify="right" if header != "node" else "left")
        total = 0
        for channel in ROLES:
            count = import_consents(
                network.parties[channel].endpoint,
                pki / channel,
                workdir / "data" / f"{channel}.consents.csv",
            )
            held = len(read_channel_table(workdir / "data" / f"{channel}.csv"))
            table.add_row(channel, str(held), str(count), str(held - count))
            total += count
        console.print(table)
        summary.append(("consents recorded", str(total)))
        auditor = pki / "auditor"
        with PartyCredentials.load(auditor).channel(endpoint, COORDINATOR) as ch:
            before = LedgerClient(ch, load_coordinator_verifier(auditor), endpoint).checkpoint()
        (workdir / "audit-before.note").write_text(before.note)

        console.rule("[bold]3. Alignment: private set intersection between the nodes")
        result = run_alignment(endpoint, pki / LABEL_CHANNEL)
        console.print(summary_table(result))
        summary.append(
            (
                "customers aligned (2+ channels)",
                f"{result.rows_with_two_or_more_channels} of {result.rows}",
            )
        )

        console.rule("[bold]4. Federated training on Flower (masked sums only)")
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("training", total=1)

            def report(stage: str, done: int, total: int, values: dict[str, float]) -> None:
                progress.update(task, description=f"training: {stage}", completed=done, total=total)

            trained = train_network(
                NetworkLayout(workdir), out=workdir / "train-report", progress=report
            )
        model = trained.model
        console.print(
            f"model [bold]{model.model_id}[/bold]: held-out AUC {model.metrics['auc']:.3f}, "
            f"ECE {model.metrics['ece']:.3f}, {model.report.rounds} rounds "
            f"in {model.report.seconds:.0f} s, "
            f"recorded at ledger index {trained.ledger_index}; calibration plot {trained.plot}"
        )
        summary.append(("trust model held-out AUC", f"{model.metrics['auc']:.3f}"))

        console.rule("[bold]5. A marketer asks at two touchpoints")
        refs = read_channel_table(workdir / "data" / f"{LABEL_CHANNEL}.csv").refs
        marketer = PartyCredentials.load(pki / "marketer")
        answers = Table(title="Answers (each with its sources, policy version and ledger receipt)")
        for header in ("customer", "touchpoint", "trust", "action", "sources", "conf.", "uses at"):
            # the long ones wrap, so an 80-column terminal shows every value whole
            wraps = header in ("action", "sources")
            answers.add_column(header, no_wrap=not wraps, overflow="fold" if wraps else "ellipsis")
        scored_refs: list[str] = []
        with marketer.channel(endpoint, COORDINATOR) as ch:
            stub = scoring_pb2_grpc.ScoringStub(ch)
            for i, ref in enumerate(refs[:12]):
                touchpoint = TOUCHPOINTS[i % 2]
                answer = ask(stub, touchpoint, subject(ref), "marketing")
                if answer.scored:
                    scored_refs.append(ref)
                    answers.add_row(
                        ref,
                        touchpoint,
                        f"{answer.trust:.0f}",
                        answer.action,
                        " ".join(answer.sources),
                        f"{answer.confidence:.0%}",
                        str(min(answer.receipt.use_indexes)),
                    )
                else:
                    answers.add_row(
                        ref, touchpoint, "-", "no score", answer.explanation[:30], "-", "-"
                    )
            console.print(answers)
            summary.append(("requests scored", f"{len(scored_refs)} of 12"))

            console.rule("[bold]6. A customer revokes consent at one channel")
            victim = scored_refs[0]
            label = PartyCredentials.load(pki / LABEL_CHANNEL)
            with label.channel(network.parties[LABEL_CHANNEL].endpoint, LABEL_CHANNEL) as lch:
                consent_pb2_grpc.ConsentStub(lch).Revoke(
                    consent_pb2.RevokeConsentRequest(local_ref=victim), timeout=10
                )
            again = ask(stub, "checkout", subject(victim), "marketing")
            console.print(
                f"{victim} revoked at the brand's node; asked again: "
                f"[bold]{'scored' if again.scored else 'no score'}[/bold] — {again.explanation}"
            )
            summary.append(("revocation honoured", "yes" if not again.scored else "NO"))

        console.rule("[bold]7. The compliance officer audits the ledger")
        time.sleep(1.1)  # the next checkpoint covers everything above
        auditor_credentials = PartyCredentials.load(auditor)
        with auditor_credentials.channel(endpoint, COORDINATOR) as ch:
            client = AuditClient(ch, load_coordinator_verifier(auditor), endpoint)
            saved = read_checkpoint_file(workdir / "audit-before.note", client.verifier)
            extends = verify_extends(client, saved)
            latest = client.checkpoint()
            violations = find_violations(
                client.verified_events(latest.checkpoint),
                auditor_opener(auditor_credentials.key_pem),
            )
        console.print(
            f"checkpoint {extends.new_size} extends the one saved before alignment "
            f"({extends.old_size}); "
            f"{extends.entries_checked} entries re-hashed to the signed root; "
            f"{violations.uses_checked} data uses checked against their consents: "
            f"[bold]{len(violations.violations)} violations[/bold]"
        )
        summary.append(("ledger entries verified", str(extends.entries_checked)))
        summary.append(("audit violations", str(len(violations.violations))))
    finally:
        codes = network.stop()
    bad = {name: code for name, code in codes.items() if code != 0}
    summary.append(("processes stopped cleanly", f"{len(codes) - len(bad)} of {len(codes)}"))
    summary.append(("seconds", f"{time.monotonic() - started:.0f}"))
    final = Table(title="Accord demo: summary")
    final.add_column("what")
    final.add_column("result", justify="right")
    for what, value in summary:
        final.add_row(what, value)
    console.rule()
    console.print(final)
    console.print(f"logs in {workdir / 'logs'}")
    if bad:
        raise AccordError(f"some parties did not stop cleanly: {bad}; logs in {workdir / 'logs'}")
