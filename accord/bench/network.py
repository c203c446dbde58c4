"""A trained local network of real processes for the benches that drive scoring load.

A coordinator and four node processes on synthetic data, consents imported, one alignment and
a short training: what ``accord bench score`` and ``accord bench soak`` measure against.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import Progress

from accord.cli.consent_cmd import import_consents
from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.errors import AccordError
from accord.launcher import LocalNetwork
from accord.node import store
from accord.pki_layout import init_pki
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

ROLES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}
PARTIES = ["coordinator", *ROLES, "marketer", "auditor"]
NODE_STOP_TIMEOUT_S = 90.0


def accord_cli(*args: str) -> None:
    """Run one `accord` command as its own process, as an operator would."""
    done = subprocess.run([sys.executable, "-m", "accord", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AccordError(f"setup step `accord {args[0]}` failed: {done.stderr.strip()[-300:]}")


@dataclass(frozen=True)
class BenchNetwork:
    work: Path
    network: LocalNetwork
    stop_codes: dict[str, int] = field(default_factory=dict)  # each process's, once stopped

    @property
    def pki(self) -> Path:
        return self.work / "pki"

    def table_refs(self, channel: str) -> list[str]:
        return read_channel_table(self.work / "data" / f"{channel}.csv").refs


@contextmanager
def trained_network(
    work: Path,
    progress: Progress,
    customers: int,
    *,
    coordinator_db: str | None = None,
    rounds: int = 3,
    train: bool = True,
) -> Iterator[BenchNetwork]:
    """Bring the network up and train it (unless ``train`` is False: then the nodes hold
    their data and consents, with no alignment or model); stop every process on the way out."""
    init_pki(work / "pki", PARTIES, network="bench.local", force=False, now=dt.datetime.now(dt.UTC))
    split = split_by_channel(synthesize(customers), "full")
    split.write(work / "data", consents_seed=1)
    db_urls = {} if coordinator_db is None else {"coordinator": coordinator_db}
    network = LocalNetwork(workdir=work, pki_dir=work / "pki", db_urls=db_urls)
    bench = BenchNetwork(work, network)
    setup = progress.add_task("setup: network, consents, alignment, training", total=4)
    for channel in ROLES:
        engine = make_engine(sqlite_url(network.node_dir(channel) / "node.db"))
        upgrade(engine, "node")
        store.import_table(engine, read_channel_table(work / "data" / f"{channel}.csv"), channel)
        engine.dispose()
    try:
        network.start_coordinator()
        for channel, role in ROLES.items():
            network.start_node(channel, role)
        for channel in ROLES:
            network.parties[channel].wait_ready()
        progress.advance(setup)
        endpoint = network.parties["coordinator"].endpoint
        for channel in ROLES:
            import_consents(
                network.parties[channel].endpoint,
                work / "pki" / channel,
                work / "data" / f"{channel}.consents.csv",
            )
        progress.advance(setup)
        if train:
            from accord.launch.train_job import NetworkLayout, train_network  # loads torch
            from accord.scoring.split_model import SplitConfig

            accord_cli("align", "--coordinator", endpoint, "--pki", str(work / "pki" / "label"))
            progress.advance(setup)
            config = SplitConfig(rounds=rounds)
            train_network(NetworkLayout(work), config=config, db_url=coordinator_db)
        progress.advance(setup, 2 if not train else 1)
        yield bench
    finally:
        bench.stop_codes.update(_stop(network))


def _stop(network: LocalNetwork) -> dict[str, int]:
    """Every node stops at once (each drains its calls), then the coordinator. One SIGTERM
    each: a second one could land while the interpreter exits, when Python has put back the
    default action, and kill it. A generous wait: a node restarted moments ago finishes
    importing torch before it exits."""
    nodes = [p for name, p in network.parties.items() if name in ROLES]
    for party in nodes:
        if party.process.poll() is None:
            party.process.send_signal(signal.SIGTERM)
    for party in nodes:
        try:
            party.process.wait(timeout=NODE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            party.process.kill()
            party.process.wait()
    return network.stop()  # the nodes have exited: this stops the coordinator
