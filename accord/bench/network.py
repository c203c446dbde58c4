"""A trained local network of real processes for the benches that drive scoring load.

A coordinator and four node processes on synthetic data, consents imported, one alignment and
a short training: what ``accord bench score`` and ``accord bench soak`` measure against.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.progress import Progress

from accord.cli.consent_cmd import import_consents
from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.errors import AccordError
from accord.launch.train_job import NetworkLayout, train_network
from accord.launcher import LocalNetwork
from accord.node import store
from accord.pki_layout import init_pki
from accord.scoring.split_model import SplitConfig
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

ROLES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}
PARTIES = ["coordinator", *ROLES, "marketer", "auditor"]


def accord_cli(*args: str) -> None:
    """Run one `accord` command as its own process, as an operator would."""
    done = subprocess.run([sys.executable, "-m", "accord", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise AccordError(f"setup step `accord {args[0]}` failed: {done.stderr.strip()[-300:]}")


@dataclass(frozen=True)
class BenchNetwork:
    work: Path
    network: LocalNetwork

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
) -> Iterator[BenchNetwork]:
    """Bring the network up and train it; stop every process on the way out."""
    init_pki(work / "pki", PARTIES, network="bench.local", force=False, now=dt.datetime.now(dt.UTC))
    split = split_by_channel(synthesize(customers), "full")
    split.write(work / "data", consents_seed=1)
    db_urls = {} if coordinator_db is None else {"coordinator": coordinator_db}
    network = LocalNetwork(workdir=work, pki_dir=work / "pki", db_urls=db_urls)
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
        accord_cli("align", "--coordinator", endpoint, "--pki", str(work / "pki" / "label"))
        progress.advance(setup)
        train_network(NetworkLayout(work), config=SplitConfig(rounds=rounds), db_url=coordinator_db)
        progress.advance(setup)
        yield BenchNetwork(work, network)
    finally:
        network.stop()
