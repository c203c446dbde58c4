"""The BG/NBD + Gamma-Gamma baseline against DESIGN.md's reference, and the bench contract."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import shared_path

from accord.bench.ltv_experiment import run_ltv_experiment
from accord.data import cdnow
from accord.errors import InvalidInput
from accord.scoring.ltv.baseline import fit_btyd_baseline, rfm_summary
from accord.scoring.ltv.btyd_fit import gamma_gamma_fitter
from accord.scoring.ltv.fallback import (
    MIN_SCALE_CUSTOMERS,
    OWN_ESTIMATE_EXPONENT,
    fallback_scale,
    own_channel_estimates,
)
from accord.scoring.ltv.federated import LTV_SPLIT
from accord.scoring.ltv.metrics import ltv_metrics
from accord.scoring.ltv.split import SplitConfig
from accord.scoring.split_model import TooFewSources

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
    # DESIGN.md's figures to their last printed digit; the fit ends where the gradient does, so
    # another CPU's kernels move them by far less than that digit (rounding could still flip)
    assert everyone.aggregate_error_pct == pytest.approx(-17.3, abs=0.1)
    assert everyone.decile_mape_pct == pytest.approx(21.3, abs=0.1)
    assert everyone.gini == pytest.approx(0.672, abs=0.001)
    assert everyone.spearman == pytest.approx(0.42, abs=0.01)
    test = cdnow.in_test_cohort(ids)
    cohort = ltv_metrics(predicted[test], label[test])
    assert cohort.aggregate_error_pct == pytest.approx(-20.2, abs=0.1)
    assert cohort.decile_mape_pct == pytest.approx(23.2, abs=0.1)
    assert cohort.gini == pytest.approx(0.670, abs=0.001)
    assert cohort.spearman == pytest.approx(0.43, abs=0.01)


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
    below = out["below_k"]
    # every test customer below k is a lone channel's, and that channel answered for them
    assert below["n_test"] == below["answered_by_own_channel"] == 1000 - out["at_k"]["n_test"]
    assert set(below["own_channel_scales"]) == set(cdnow.CHANNELS)
    assert all(s > 0 for s in below["own_channel_scales"].values())
    assert set(below["with_channel_set_priors_instead"]) == CONTRACT
    assert below["with_channel_set_priors_instead"]["gini"] != out["gini"]
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


def test_a_lone_channel_answers_with_its_own_model_scaled_by_one_group_sum() -> None:
    scenario = cdnow.build_scenario(cdnow.synthesize(3000, seed=8))
    estimates = own_channel_estimates(scenario.transactions, cdnow.CHANNELS)
    for channel in cdnow.CHANNELS:
        own = scenario.transactions[scenario.transactions["channel"] == channel]
        # fitted on the channel's own purchases only, for exactly its own customers (those who
        # bought there in the calibration period)
        seen = own[own["date"] <= pd.Timestamp(cdnow.CALIBRATION_END)]["customer_id"]
        assert set(estimates[channel].index) == set(seen)
        # recomputed from the raw log: the baseline's BG/NBD on this channel alone, times a
        # Gamma-Gamma over every purchase day (the first included), to the power 0.8
        purchases = fit_btyd_baseline(own).expected_purchases
        days = (
            own[own["date"] <= pd.Timestamp(cdnow.CALIBRATION_END)]
            .groupby(["customer_id", "date"])["dollar_value"]
            .sum()
            .groupby("customer_id")
        )
        count, mean = days.size().astype(float), days.mean()
        gg = gamma_gamma_fitter()
        gg.fit(count[mean > 0], mean[mean > 0])
        per_day = gg.conditional_expected_average_profit(count, mean)
        expected = (purchases * per_day.reindex(purchases.index)) ** OWN_ESTIMATE_EXPONENT
        np.testing.assert_allclose(
            estimates[channel].to_numpy(), expected.reindex(estimates[channel].index), rtol=1e-6
        )
    assert OWN_ESTIMATE_EXPONENT == 0.8
    merged = fit_btyd_baseline(scenario.transactions).predicted
    assert not np.allclose(estimates["app"], merged.reindex(estimates["app"].index))
    est = np.full(MIN_SCALE_CUSTOMERS, 2.0)
    labels = np.arange(MIN_SCALE_CUSTOMERS, dtype=float)
    assert fallback_scale(est, labels) == pytest.approx(labels.sum() / est.sum())
    with pytest.raises(TooFewSources, match="at least 100"):
        fallback_scale(est[:-1], labels[:-1])
    with pytest.raises(InvalidInput, match="more than zero"):
        fallback_scale(np.zeros(MIN_SCALE_CUSTOMERS), labels)
    with pytest.raises(InvalidInput, match="one estimate per"):
        fallback_scale(est, labels[:-1])
