"""A real local network: a coordinator and four nodes, each its own process, over mTLS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from helpers import fresh_postgres_database, make_pki

from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.launcher import LocalNetwork
from accord.node import store
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

ROLES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}


def build_network(workdir: Path, db_urls: dict[str, str]) -> LocalNetwork:
    pki = make_pki(workdir / "pki")
    split_by_channel(synthesize(300), "realistic").write(workdir / "data", consents_seed=11)
    network = LocalNetwork(workdir=workdir, pki_dir=pki, db_urls=db_urls)
    for channel in ROLES:
        engine = make_engine(
            db_urls.get(channel) or sqlite_url(network.node_dir(channel) / "node.db")
        )
        upgrade(engine, "node")
        store.import_table(engine, read_channel_table(workdir / "data" / f"{channel}.csv"), channel)
        engine.dispose()
    return network


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def network(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalNetwork]:
    workdir = tmp_path_factory.mktemp(f"net-{request.param}")
    with ExitStack() as stack:
        db_urls: dict[str, str] = {}
        if request.param == "postgres":
            for party in ["coordinator", *ROLES]:
                db_urls[party] = stack.enter_context(fresh_postgres_database())
        net = build_network(workdir, db_urls)
        try:
            net.start_coordinator()
            for channel, role in ROLES.items():
                net.start_node(channel, role)
            for channel in ROLES:
                net.parties[channel].wait_ready()
            yield net
        finally:
            codes = net.stop()
        assert codes == dict.fromkeys(codes, 0), f"unclean shutdown: {codes}"
