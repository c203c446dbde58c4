"""The BG/NBD + Gamma-Gamma baseline against DESIGN.md's reference, and the bench contract."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import shared_path

from accord.data import cdnow
from accord.errors import InvalidInput
from accord.scoring.ltv.baseline import fit_btyd_baseline, rfm_summary
from accord.scoring.ltv.experiment import run_ltv_experiment
from accord.scoring.ltv.federated import LTV_SPLIT
from accord.scoring.ltv.metrics import ltv_metrics
from accord.scoring.ltv.split import SplitConfig

CONTRACT = {"aggregate_error_pct", "decile_mape_pct", "gini", "spearman"}


def test_rfm_summary_by_hand() -> None:
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2],
            "date": pd.to_datetime(
                ["1997-01-01", "1997-01-01", "1997-03-02", "1997-09-01", "1997-03-31"]
            ),
            "number_of_cds": [1, 1, 1, 1, 1],
            "dollar_value": [10.0, 5.0, 30.0, 20.0, 8.0],
        }
    )
    summary = rfm_summary(log)
    assert summary.loc[1].to_dict() == {
        "frequency": 2.0,  # three purchase days
        "recency": 243.0,  # 1997-01-01 .. 09-01
        "T": 272.0,  # 1997-01-01 .. 09-30
        "monetary_value": 25.0,  # mean of the repeat days (30, 20)
    }
    assert summary.loc[2].to_dict() == {
        "frequency": 0.0,
        "recency": 0.0,
        "T": 183.0,
        "monetary_value": 0.0,
    }


def test_baseline_reproduces_the_design_reference_on_cdnow() -> None:
    log = cdnow.load_cdnow(shared_path("data", "cdnow", "CDNOW_master.txt"))
    fitted = fit_btyd_baseline(log)
    assert fitted.bgnbd_params["r"] == pytest.approx(0.2516, abs=1e-3)
    ids = fitted.predicted.index.to_numpy()
    label = cdnow.holdout_spend(log, ids).to_numpy()
    predicted = fitted.predicted.to_numpy()
    everyone = ltv_metrics(predicted, label)
    assert round(everyone.aggregate_error_pct, 1) == -17.3
    assert round(everyone.decile_mape_pct, 1) == 21.3
    assert round(everyone.gini, 3) == 0.672
    assert round(everyone.spearman, 2) == 0.42
    test = cdnow.in_test_cohort(ids)
    cohort = ltv_metrics(predicted[test], label[test])
    assert round(cohort.aggregate_error_pct, 1) == -20.2
    assert round(cohort.decile_mape_pct, 1) == 23.2
    assert round(cohort.gini, 3) == 0.670
    assert round(cohort.spearman, 2) == 0.43


def test_bench_ltv_contract_on_synthetic_data(tmp_path: Path) -> None:
    # decile MAPE needs a buyer in every decile of every model: 1,000 test customers
    log = cdnow.synthesize(5000, seed=5)
    result = run_ltv_experiment(
        log,
        config=SplitConfig(epochs=2, average_last=1),
        masked_config=replace(LTV_SPLIT, rounds=3),
        chart_path=tmp_path / "deciles.png",
    )
    out = json.loads(json.dumps(result.as_dict()))
    assert set(out) >= CONTRACT
    assert set(out["baseline"]) == CONTRACT
    assert out["k"] == 2 and 0 < out["coverage_at_k"] < 1
    at_k = out["at_k"]
    assert set(at_k["federated"]) == set(at_k["baseline"]) == CONTRACT
    assert at_k["best_single_channel"]["channel"] in cdnow.CHANNELS
    assert at_k["n_test"] == round(out["coverage_at_k"] * 1000)
    reference = out["without_p2"]
    assert set(reference["centralized"]) == CONTRACT
    assert reference["best_single_channel"]["channel"] in cdnow.CHANNELS
    assert set(reference["single_channels"]) == set(cdnow.CHANNELS)
    assert {"app", "web+store"} <= set(reference["subsets"])
    assert out["n_test"] == 1000 and out["n_train"] == 4000
    assert out["rounds"] == 3 and out["bytes_sent"] > 0
    assert all(np.isfinite(out[k]) for k in CONTRACT)
    assert (tmp_path / "deciles.png").exists()
    with pytest.raises(InvalidInput, match="either"):
        run_ltv_experiment()
