"""`accord bench psi`: Accord's alignment between two node processes vs openmined-psi, same sets.

Setup (untimed): a coordinator and two node processes (label, pay) on loopback, each importing
``n`` customers (half of them shared, phone numbers spelled in each channel's house style) and
recording training consent for all of them. Timed: one alignment run end to end (consent gate,
data-use log, PSI streams, row keys, labels, commit). Then openmined-psi (C++, P-256) on the
same normalised phone numbers in this process, and the floor: the run's bare group operations
(each party multiplies its own n points and the peer's n values; the two parties run on
separate cores) with no I/O.
"""

from __future__ import annotations

import datetime as dt
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from accord.cli.align_cmd import run_alignment
from accord.crypto.psi import PsiKey, blind_points, hash_to_points, normalize_phone
from accord.data.channel_file import ChannelTable
from accord.errors import ConfigError
from accord.launcher import LocalNetwork
from accord.node import store
from accord.node.consent import default_terms
from accord.node.consent_server import terms_to_proto
from accord.pki_layout import init_pki
from accord.proto.v1 import consent_pb2, consent_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

GRANT_BATCH = 1000


@dataclass(frozen=True)
class PsiBench:
    n: int
    intersection: int
    accord_s: float
    openmined_s: float
    floor_s: float

    def as_json(self) -> dict[str, object]:
        return {
            "n": self.n,
            "intersection": self.intersection,
            "accord_s": round(self.accord_s, 3),
            "openmined_s": round(self.openmined_s, 3),
            "floor_s": round(self.floor_s, 3),
            "speedup": round(self.openmined_s / self.accord_s, 2),
            "accord_over_floor": round(self.accord_s / self.floor_s, 2),
        }


def _phone(i: int, style: int) -> str:
    digits = f"9{(i * 7919) % 100_000_000:08d}"
    if style == 1:
        return f"0{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    return f"+886{digits}"


def _table(channel: str, ids: range, style: int) -> ChannelTable:
    refs = [f"{channel}-{i:08d}" for i in ids]
    column = {"y": "bool"} if channel == "label" else {"x": "float"}
    return ChannelTable(
        channel,
        refs,
        [_phone(i, style) for i in ids],
        ["" for _ in ids],
        column,  # type: ignore[arg-type]
        np.asarray([[i % 2] for i in ids], dtype=float),
    )


def _grant_all(
    network: LocalNetwork, pki: Path, channel: str, refs: list[str], progress: Progress
) -> None:
    credentials = PartyCredentials.load(pki / channel)
    terms = terms_to_proto(
        default_terms(["model-training"], controller=channel, now=int(time.time()))
    )
    task = progress.add_task(f"setup: consents at {channel}", total=len(refs))
    with credentials.channel(network.parties[channel].endpoint, channel) as ch:
        stub = consent_pb2_grpc.ConsentStub(ch)
        for start in range(0, len(refs), GRANT_BATCH):
            part = refs[start : start + GRANT_BATCH]
            grants = [consent_pb2.ConsentGrant(local_ref=r, terms=terms) for r in part]
            stub.Grant(consent_pb2.GrantConsentRequest(grants=grants), timeout=600)
            progress.advance(task, len(part))


def _openmined(client_items: list[str], server_items: list[str]) -> tuple[float, int]:
    try:
        import private_set_intersection.python as openmined
    except ImportError as exc:
        raise ConfigError(
            "openmined-psi is not installed: `make setup` installs it (pip install --no-deps "
            "openmined-psi==2.0.6)"
        ) from exc
    start = time.perf_counter()
    server = openmined.server.CreateWithNewKey(True)
    client = openmined.client.CreateWithNewKey(True)
    setup = server.CreateSetupMessage(
        1e-9, len(client_items), server_items, openmined.DataStructure.RAW
    )
    response = server.ProcessRequest(client.CreateRequest(client_items))
    found = client.GetIntersection(setup, response)
    return time.perf_counter() - start, len(found)


def _floor(n: int) -> float:
    """One party's group operations (n own points, n peer values); parties run in parallel."""
    points = hash_to_points([secrets.token_bytes(64) for _ in range(min(n, 20_000))])
    key, other = PsiKey.generate(secrets.token_bytes), PsiKey.generate(secrets.token_bytes)
    values = blind_points(other, points)
    start = time.perf_counter()
    blind_points(key, points)
    blind_points(key, values)
    per_item = (time.perf_counter() - start) / len(points)
    return per_item * n


def run_psi_bench(n: int, progress: Progress) -> PsiBench:
    if n < 10:
        raise ConfigError("--n must be at least 10")
    label_ids, pay_ids = range(0, n), range(n // 2, n + n // 2)
    with tempfile.TemporaryDirectory(prefix="accord-bench-psi-") as tmp:
        work = Path(tmp)
        init_pki(
            work / "pki",
            ["coordinator", "label", "pay"],
            network="bench.local",
            force=False,
            now=dt.datetime.now(dt.UTC),
        )
        network = LocalNetwork(workdir=work, pki_dir=work / "pki")
        tables = {"label": _table("label", label_ids, 0), "pay": _table("pay", pay_ids, 1)}
        task = progress.add_task("setup: import (identifiers mapped to points once)", total=2)

        def load(channel: str) -> None:
            engine = make_engine(sqlite_url(network.node_dir(channel) / "node.db"))
            upgrade(engine, "node")
            store.import_table(engine, tables[channel], channel)
            engine.dispose()
            progress.advance(task)

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(load, tables))
        network.start_coordinator()
        network.start_node("label", "label")
        network.start_node("pay", "feature")
        try:
            for channel in tables:
                network.parties[channel].wait_ready()
            with ThreadPoolExecutor(2) as pool:
                list(
                    pool.map(
                        lambda c: _grant_all(network, work / "pki", c, tables[c].refs, progress),
                        tables,
                    )
                )
            start = time.perf_counter()
            result = run_alignment(network.parties["coordinator"].endpoint, work / "pki" / "label")
            accord_s = time.perf_counter() - start
        finally:
            network.stop()
    intersection = result.channels[0].matched
    client = [normalize_phone(p, country_code="886") for p in tables["pay"].phones]
    server = [normalize_phone(p, country_code="886") for p in tables["label"].phones]
    task = progress.add_task("openmined-psi on the same sets", total=1)
    openmined_s, openmined_found = _openmined(client, server)
    progress.advance(task)
    if openmined_found != intersection:
        raise ConfigError(f"the two implementations disagree: {intersection} vs {openmined_found}")
    return PsiBench(n, intersection, accord_s, openmined_s, _floor(n))
