"""`accord bench zkp` at its smallest: one JSON line with the issue's keys, sane values."""

from __future__ import annotations

import json
import subprocess
import sys


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "bench", "zkp", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bench_zkp_prints_its_json_line() -> None:
    done = _bench("--runs", "1", "--reference-runs", "1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("sign_ms", "prove_ms", "verify_ms", "proof_bytes", "reference_verify_ms"):
        assert result[key] > 0, key
    # CPU time beside wall time, and a node's check of one consent proof
    for key in ("sign_cpu_ms", "prove_cpu_ms", "verify_cpu_ms", "consent_verify_ms"):
        assert result[key] > 0, key
    # 10 messages, 1 disclosed: 3 points, e^, r1^, r3^, 9 undisclosed m^ and c.
    assert result["proof_bytes"] == 3 * 48 + (3 + 9 + 1) * 32
    rows = result["by_disclosed"]
    assert [row["disclosed"] for row in rows] == list(range(1, 11))
    # every disclosed message removes one response scalar from the proof
    assert [row["proof_bytes"] for row in rows] == [560 - 32 * k for k in range(10)]


def test_bench_zkp_refuses_zero_runs_in_one_line() -> None:
    done = _bench("--runs", "0")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("accord: error: "), done.stderr
    assert "--runs" in lines[0]
