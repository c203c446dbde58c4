"""The command line as a person uses it: real subprocesses, one readable line on error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def accord(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], needle: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("accord: error: "), lines[0]
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_pki_init_then_refuses_to_overwrite(tmp_path: Path) -> None:
    first = accord("pki", "init", "--dir", str(tmp_path / "pki"), "--parties", "coordinator,pay")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "pki" / "pay" / "tls.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "pki" / "coordinator" / "signer.key").exists()
    assert not (tmp_path / "pki" / "pay" / "signer.key").exists()
    again = accord("pki", "init", "--dir", str(tmp_path / "pki"), "--parties", "coordinator,pay")
    assert_one_line_error(again, "--force")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["pki", "init", "--dir", "{tmp}/p", "--parties", "pay"], "must include 'coordinator'"),
        (["pki", "init", "--dir", "{tmp}/p", "--parties", "coordinator,Bad Name"], "party name"),
        (["registry", "show", "--pki", "{tmp}/nowhere"], "tls.crt is missing"),
        (["data", "load", "--source", "{tmp}/none.csv", "--out", "{tmp}/o"], "does not exist"),
        (["data", "synth", "--out", "{tmp}/o", "--coverage", "most"], "--coverage must be"),
        (
            [
                "node",
                "import",
                "--channel",
                "pay",
                "--data-dir",
                "{tmp}/n",
                "--file",
                "{tmp}/x.csv",
            ],
            "schema file",
        ),
        (
            [
                "node",
                "import",
                "--channel",
                "app",
                "--data-dir",
                "{tmp}/n",
                "--file",
                "{tmp}/app.purchases.csv",
            ],
            "needs --as-of",
        ),
        (
            [
                "node",
                "import",
                "--channel",
                "app",
                "--data-dir",
                "{tmp}/n",
                "--file",
                "{tmp}/app.purchases.csv",
                "--as-of",
                "30/09/1997",
            ],
            "YYYY-MM-DD",
        ),
        (
            [
                "node",
                "import",
                "--channel",
                "app",
                "--data-dir",
                "{tmp}/n",
                "--file",
                "{tmp}/app.csv",
                "--as-of",
                "1997-09-30",
            ],
            "only to purchase logs",
        ),
        (["demo", "train", "--network-dir", "{tmp}/n", "--model", "churn"], "--model must be"),
        (
            ["train", "--coordinator", "127.0.0.1:9", "--pki", "{tmp}/p", "--model", "churn"],
            "--model must be",
        ),
        (["db", "upgrade", "--role", "node", "--db", "mysql://x/y"], "unsupported database driver"),
        (["coordinator", "serve", "--pki", "{tmp}/nowhere", "--data-dir", "{tmp}/c"], "is missing"),
    ],
)
def test_errors_are_one_readable_line(tmp_path: Path, args: list[str], needle: str) -> None:
    result = accord(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert_one_line_error(result, needle)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = accord("--debug", "registry", "show", "--pki", str(tmp_path / "nowhere"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_a_node_with_no_data_says_what_to_do(tmp_path: Path) -> None:
    accord("pki", "init", "--dir", str(tmp_path / "pki"))
    result = accord(
        "node",
        "serve",
        "--channel",
        "pay",
        "--data-dir",
        str(tmp_path / "pay"),
        "--pki",
        str(tmp_path / "pki" / "pay"),
        "--coordinator",
        "127.0.0.1:1",
    )
    assert_one_line_error(result, "accord node import")


def test_a_node_started_with_another_partys_folder_is_refused(tmp_path: Path) -> None:
    accord("pki", "init", "--dir", str(tmp_path / "pki"))
    result = accord(
        "node",
        "serve",
        "--channel",
        "pay",
        "--data-dir",
        str(tmp_path / "pay"),
        "--pki",
        str(tmp_path / "pki" / "shop"),
    )
    assert_one_line_error(result, "holds 'shop'")


def test_unreachable_coordinator_is_reported_plainly(tmp_path: Path) -> None:
    accord("pki", "init", "--dir", str(tmp_path / "pki"))
    result = accord(
        "registry", "show", "--pki", str(tmp_path / "pki" / "pay"), "--coordinator", "127.0.0.1:1"
    )
    assert_one_line_error(result, "unreachable")


def test_bench_finds_the_shared_data_or_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from accord.data.shared import find_shared

    # from a folder with no ../shared the data are still found beside the checkout (or via
    # ACCORD_SHARED, which the tests' own helpers also honour)
    elsewhere = tmp_path / "work" / "here"
    elsewhere.mkdir(parents=True)
    with monkeypatch.context() as m:
        m.chdir(elsewhere)
        found = find_shared("DESIGN.md")
    from helpers import SHARED

    if (SHARED / "DESIGN.md").exists():
        assert found == (SHARED / "DESIGN.md").resolve()
    else:
        assert found is None
    env = {**os.environ, "ACCORD_SHARED": str(tmp_path / "nowhere")}
    for bench, needle in (("ltv", "CDNOW_master.txt not found"), ("train", "UCI file not found")):
        result = subprocess.run(
            [sys.executable, "-m", "accord", "bench", bench],
            capture_output=True,
            text=True,
            cwd=elsewhere,
            env=env,
            timeout=120,
        )
        assert_one_line_error(result, needle)
        assert str(tmp_path / "nowhere") in result.stderr and "ACCORD_SHARED" in result.stderr
    given = accord("bench", "ltv", "--source", str(tmp_path / "none.txt"))
    assert_one_line_error(given, "does not exist")
