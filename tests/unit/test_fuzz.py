"""The short run of ``make fuzz`` inside the suite: every target, a few hundred mutated inputs,
no crash and nothing stored on a refused input. And the judge itself: a bare exception counts
as a crash, a refusal that stored something counts as a state change."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from accord.errors import InvalidInput
from accord.fuzz.harness import Harness, Tally, Target, format_table, run_mutations
from accord.fuzz.targets import TARGETS

INPUTS = 300
SECONDS = 1.5


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_target_survives_a_short_fuzz(target: Target, tmp_path: Path) -> None:
    tally = run_mutations(target, tmp_path, inputs=INPUTS, seconds=SECONDS, seed=7)
    report = format_table([tally]) + "".join(f"\n{s}" for s in tally.samples)
    assert tally.crashes == 0, report
    assert tally.state_changes == 0, report
    assert tally.accepted >= 1, f"no seed of {target.name} was accepted: the target tests nothing"
    assert tally.refused >= 1, report


def test_the_judge_counts_crashes_and_stores_on_refusal(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    db.execute("CREATE TABLE t (x)")
    observer = sqlite3.connect(tmp_path / "store.db", isolation_level=None)

    def call(data: bytes) -> object:
        if data == b"store-then-refuse":
            db.execute("INSERT INTO t VALUES (1)")
            raise InvalidInput("refused after storing")
        if data == b"roll-back-then-refuse":
            db.execute("BEGIN")
            db.execute("INSERT INTO t VALUES (2)")
            db.execute("ROLLBACK")
            raise InvalidInput("refused, nothing kept")
        if data == b"crash":
            return [][1]
        db.execute("INSERT INTO t VALUES (3)")  # accepted: storing is what it is for
        return None

    harness = Harness(call, [], state=lambda: observer.execute("PRAGMA data_version").fetchone()[0])
    tally = Tally("judge", stateful=True)
    tally.prime(harness)
    for data in (b"accept", b"roll-back-then-refuse", b"store-then-refuse", b"crash", b"accept"):
        tally.feed(harness, data)
    assert (tally.inputs, tally.accepted, tally.refused) == (5, 2, 2)
    assert tally.crashes == 1
    assert tally.state_changes == 1
    assert [s.kind for s in tally.samples] == [
        "state changed on refusal",
        "IndexError: list index out of range",
    ]


def test_make_fuzz_runs_atheris_and_prints_the_table(tmp_path: Path) -> None:
    # what `make fuzz` runs, on one target and a few hundred inputs: libFuzzer drives the
    # target in its own process, the table comes back through the result file
    fuzz = [sys.executable, "-m", "accord.fuzz", "--inputs", "300", "--seconds", "60"]
    done = subprocess.run(
        [*fuzz, "--out", str(tmp_path), "tiles"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    header, _, row = done.stdout.splitlines()[:3]
    assert header.split()[:5] == ["target", "inputs", "accepted", "refused", "crashes"]
    assert row.split()[:2] == ["tiles", "300"]
    assert row.split()[4:6] == ["0", "n/a"]  # no crash; a pure parser keeps no state
    assert "INFO: Seed: 1" in (tmp_path / "tiles.log").read_text()  # libFuzzer ran it
