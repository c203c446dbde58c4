"""Networks of real processes that several test folders share, built once per session: the
trust network (aligned, then trained) and the lifetime-value network on CDNOW. The curious
parties of tests/adversarial/ play against the same processes the integration tests use."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_pki

from accord.data.channel_file import read_channel_table
from accord.data.uci import split_by_channel, synthesize
from accord.launcher import LocalNetwork
from accord.node import store
from accord.store.engine import make_engine, sqlite_url
from accord.store.migrate import upgrade

ROLES = {"pay": "feature", "shop": "feature", "social": "feature", "label": "label"}
LTV_ROLES = {"app": "feature", "web": "feature", "store": "feature", "label": "label"}
AS_OF = "1997-09-30"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def aligned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, dict]]:  # type: ignore[type-arg]
    workdir = tmp_path_factory.mktemp("aligned")
    pki = make_pki(workdir / "pki")
    split_by_channel(synthesize(400), "realistic").write(workdir / "data", consents_seed=5)
    network = LocalNetwork(
        workdir=workdir, pki_dir=pki, env={"ACCORD_WIRE_LOG": str(workdir / "wire")}
    )
    for channel in ROLES:
        engine = make_engine(sqlite_url(network.node_dir(channel) / "node.db"))
        upgrade(engine, "node")
        store.import_table(engine, read_channel_table(workdir / "data" / f"{channel}.csv"), channel)
        engine.dispose()
    try:
        network.start_coordinator()
        for channel, role in ROLES.items():
            network.start_node(channel, role)
        for channel in ROLES:
            network.parties[channel].wait_ready()
        for channel in ROLES:
            done = cli(
                "consent",
                "import",
                "--file",
                str(workdir / "data" / f"{channel}.consents.csv"),
                "--node",
                network.parties[channel].endpoint,
                "--pki",
                str(pki / channel),
            )
            assert done.returncode == 0, done.stderr
        result = cli(
            "align",
            "--coordinator",
            network.parties["coordinator"].endpoint,
            "--pki",
            str(pki / "label"),
        )
        assert result.returncode == 0, result.stderr
        yield network, {"stdout": result.stdout}
    finally:
        network.stop()


@pytest.fixture(scope="session")
def trained(
    aligned: tuple[LocalNetwork, dict], tmp_path_factory: pytest.TempPathFactory
) -> tuple[LocalNetwork, Path, subprocess.CompletedProcess[str]]:  # type: ignore[type-arg]
    """The aligned network with a trust model trained on it by `accord train` (short run)."""
    network, _ = aligned
    out = tmp_path_factory.mktemp("train-report")
    result = cli(
        "demo", "train", "--network-dir", str(network.workdir), "--rounds", "3", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return network, out, result


@pytest.fixture(scope="session")
def ltv_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, Path]]:
    workdir = tmp_path_factory.mktemp("ltv-net")
    pki = make_pki(workdir / "pki", ["coordinator", *LTV_ROLES, "marketer"])
    data = workdir / "data"
    made = cli("data", "cdnow", "--out", str(data), "--customers", "1500", "--consents-seed", "5")
    assert made.returncode == 0, made.stderr
    network = LocalNetwork(workdir=workdir, pki_dir=pki)
    for channel in LTV_ROLES:
        args = ["--file", str(data / f"{channel}.purchases.csv"), "--as-of", AS_OF]
        if channel == "label":
            args = ["--file", str(data / "label.csv")]
        done = cli(
            "node",
            "import",
            "--channel",
            channel,
            "--data-dir",
            str(network.node_dir(channel)),
            *args,
        )
        assert done.returncode == 0, done.stderr
    try:
        network.start_coordinator()
        for channel, role in LTV_ROLES.items():
            network.start_node(channel, role)
        for channel in LTV_ROLES:
            network.parties[channel].wait_ready()
        for channel in LTV_ROLES:
            done = cli(
                "consent",
                "import",
                "--file",
                str(data / f"{channel}.consents.csv"),
                "--node",
                network.parties[channel].endpoint,
                "--pki",
                str(pki / channel),
            )
            assert done.returncode == 0, done.stderr
        coordinator = network.parties["coordinator"].endpoint
        aligned = cli("align", "--coordinator", coordinator, "--pki", str(pki / "label"))
        assert aligned.returncode == 0, aligned.stderr
        out = workdir / "report"
        trained = cli(
            "demo",
            "train",
            "--network-dir",
            str(workdir),
            "--model",
            "ltv",
            "--rounds",
            "6",
            "--out",
            str(out),
        )
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert "LTV model ltv-" in trained.stdout and "Gini" in trained.stdout
        assert "below k: own estimate" in trained.stdout
        assert (out / "deciles.png").stat().st_size > 5_000
        yield network, out
    finally:
        network.stop()
