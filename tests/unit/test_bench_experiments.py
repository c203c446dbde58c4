"""`accord bench experiments` at its smallest: one JSON line with the issue's keys, sane values."""

from __future__ import annotations

import json
import subprocess
import sys


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", "bench", "experiments", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_bench_experiments_prints_its_json_line() -> None:
    done = _bench("--aa-runs", "20", "--ab-runs", "20")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["aa_runs"] == 20 and result["ab_runs"] == 20 and result["alpha"] == 0.05
    for prefix in ("", "mean_"):
        assert 0 <= result[f"{prefix}aa_false_positive_rate"] <= 1
        assert result[f"{prefix}aa_fpr_upper95"] >= result[f"{prefix}aa_false_positive_rate"]
        assert 0 <= result[f"{prefix}power"] <= result[f"{prefix}power_any_sign"] <= 1
        # the always-valid boundary lies beyond the z-test's, so peeking the latter errs more
        naive = result[f"{prefix}naive_peeking_aa_fpr"]
        assert naive >= result[f"{prefix}aa_false_positive_rate"]
        # peeking costs sample: the always-valid size exceeds the fixed-horizon one
        assert result[f"{prefix}declared_sample"] > result[f"{prefix}fixed_horizon_sample"]
    assert result["srm_honest_p"] >= result["srm_threshold"] > result["srm_tampered_p"]


def test_bench_experiments_refuses_zero_runs_in_one_line() -> None:
    done = _bench("--aa-runs", "0")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("accord: error: "), done.stderr
    assert "--aa-runs" in lines[0]
