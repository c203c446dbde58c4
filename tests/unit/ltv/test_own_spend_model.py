"""A channel's own spend model: what it fits on (its purchase features), what it keeps (eight
numbers) and that kept parameters predict exactly what the fit did."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from accord.data import cdnow
from accord.data.purchase_features import purchase_features
from accord.errors import InvalidInput
from accord.scoring.ltv.baseline import BtydModel, fit_btyd, fit_btyd_baseline, rfm_summary
from accord.scoring.ltv.fallback import (
    OwnSpendModel,
    fit_own_spend_model,
    own_channel_estimates,
    own_summary,
    rfm_from_features,
)


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return cdnow.synthesize(800, seed=21)


def test_rfm_from_a_nodes_features_equals_the_rfm_of_its_log(log: pd.DataFrame) -> None:
    features = purchase_features(log, cdnow.CALIBRATION_END, key="customer_id")
    derived = rfm_from_features(features)
    direct = rfm_summary(log).reindex(derived.index)
    assert list(derived.columns) == ["frequency", "recency", "T", "monetary_value"]
    np.testing.assert_allclose(derived.to_numpy(), direct.to_numpy(), rtol=1e-12)
    # repeat buyers exist, and their monetary value is the mean spend of their repeat days
    assert (derived["frequency"] > 0).sum() > 50


def test_kept_parameters_predict_what_the_fit_predicted(log: pd.DataFrame) -> None:
    baseline = fit_btyd_baseline(log)
    summary = rfm_summary(log)
    model = fit_btyd(summary)
    kept = BtydModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert kept == model and set(kept.to_dict()) == {"bgnbd", "gammaGamma"}
    np.testing.assert_allclose(
        kept.predicted_spend(summary).to_numpy(), baseline.predicted.to_numpy(), rtol=1e-12
    )
    # a longer horizon expects more purchase days, never fewer
    assert (kept.predict(summary, 400)[0] >= kept.predict(summary, 200)[0]).all()


def test_a_nodes_own_model_from_its_features_is_the_benchs_from_the_log(log: pd.DataFrame) -> None:
    """The node fits on gate-released features; the bench on the log. Same numbers."""
    features = purchase_features(log, cdnow.CALIBRATION_END, key="customer_id")
    summary = own_summary(features)
    model = fit_own_spend_model(summary)
    kept = OwnSpendModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert kept == model and kept.exponent == 0.8
    on_log = own_channel_estimates(log.assign(channel="web"), ["web"])["web"]
    np.testing.assert_allclose(kept.estimate(summary).to_numpy(), on_log.to_numpy(), rtol=1e-12)
    # one-day buyers are told apart by what they spent that day (the baseline's Gamma-Gamma
    # gives them all the population mean)
    one_day = summary["frequency"] == 0
    same_tenure = one_day & (summary["T"] == summary.loc[one_day, "T"].mode().iloc[0])
    assert kept.estimate(summary)[same_tenure].nunique() > 1


def test_a_node_without_a_purchase_log_or_with_bad_parameters_is_told_why() -> None:
    with pytest.raises(InvalidInput, match="only a node with a purchase log"):
        rfm_from_features(pd.DataFrame({"income": [1.0, 2.0]}))
    with pytest.raises(InvalidInput, match="not a BG/NBD"):
        BtydModel.from_dict({"bgnbd": {"r": 1.0}, "gammaGamma": {}})
    with pytest.raises(InvalidInput, match="not an own spend model"):
        OwnSpendModel.from_dict({"bgnbd": {"r": 1.0}, "gammaGamma": {}})
    good = {
        "bgnbd": dict.fromkeys(["r", "alpha", "a", "b"], 1.0),
        "gammaGamma": dict.fromkeys(["p", "q", "v"], 2.0),
    }
    with pytest.raises(InvalidInput, match="exponent"):
        OwnSpendModel.from_dict({**good, "exponent": 1.5})
