"""The CDNOW omnichannel scenario: channel assignment, features, labels, per-party tables."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import shared_path

from accord.crypto.psi import normalize_email, normalize_phone
from accord.data import cdnow
from accord.data.channel_file import read_channel_table
from accord.data.uci import email_for, phone_for
from accord.errors import InvalidInput


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return cdnow.synthesize(2000, seed=11)


def tiny_log() -> pd.DataFrame:
    rows = [
        (1, "1997-01-01", 1, 10.0),
        (1, "1997-01-01", 2, 5.0),
        (1, "1997-09-01", 1, 20.0),
        (1, "1997-10-05", 1, 7.0),  # holdout
        (2, "1997-03-31", 1, 0.0),
    ]
    frame = pd.DataFrame(rows, columns=cdnow.TRANSACTION_COLUMNS)
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


def test_channel_features_by_hand() -> None:
    features = cdnow.channel_features(tiny_log())
    assert list(features.columns) == cdnow.FEATURES
    assert features.index.tolist() == [1, 2]
    one = features.loc[1].to_dict()
    assert one == {
        "transactions": 3,
        "purchase_days": 2,
        "cds": 4,
        "spend": 35.0,
        "mean_day_spend": 17.5,
        "max_day_spend": 20.0,
        "first_day_spend": 15.0,
        "last_day_spend": 20.0,
        "recency_days": 29,  # 1997-09-01 .. 09-30
        "tenure_days": 272,  # 1997-01-01 .. 09-30
        "active_span_days": 243,
        "mean_gap_days": 243.0,
        "purchase_days_30d": 1,
        "purchase_days_90d": 1,
        "spend_30d": 20.0,
        "spend_90d": 20.0,
    }
    two = features.loc[2]
    assert two["recency_days"] == two["tenure_days"] == two["mean_gap_days"] == 183
    assert two["spend"] == 0 and two["purchase_days_90d"] == 0
    assert np.isfinite(features.to_numpy()).all()


def test_holdout_spend_is_zero_for_customers_without_purchases() -> None:
    label = cdnow.holdout_spend(tiny_log(), np.array([1, 2, 3]))
    assert label.name == cdnow.LABEL
    assert label.to_dict() == {1: 7.0, 2: 0.0, 3: 0.0}
    assert cdnow.HOLDOUT_DAYS == 273


def test_channel_assignment_is_deterministic_and_conserves_every_transaction(
    synthetic: pd.DataFrame,
) -> None:
    first = cdnow.assign_channels(synthetic)
    again = cdnow.assign_channels(synthetic.sample(frac=1.0, random_state=3))
    pd.testing.assert_frame_equal(first, again)  # input order does not matter
    other = cdnow.assign_channels(synthetic, seed=1)
    assert not first["channel"].equals(other["channel"])
    assert set(first["channel"]) == set(cdnow.CHANNELS)
    ordered = synthetic.sort_values(cdnow.TRANSACTION_COLUMNS).reset_index(drop=True)
    pd.testing.assert_frame_equal(first.drop(columns="channel"), ordered)
    assert first["dollar_value"].sum() == pytest.approx(synthetic["dollar_value"].sum())


def test_channel_assignment_follows_the_documented_procedure(synthetic: pd.DataFrame) -> None:
    assigned = cdnow.assign_channels(synthetic, seed=5)
    rng = np.random.default_rng(5)
    customers, position = np.unique(assigned["customer_id"], return_inverse=True)
    shares = rng.dirichlet(cdnow.CHANNEL_CONCENTRATION, size=len(customers))
    u = rng.random(len(assigned))
    expected = [
        cdnow.CHANNELS[int(np.searchsorted(np.cumsum(shares[c]), x, side="right"))]
        for c, x in zip(position, u, strict=True)
    ]
    assert assigned["channel"].tolist() == expected


def test_customers_lean_on_a_preferred_channel(synthetic: pd.DataFrame) -> None:
    assigned = cdnow.assign_channels(synthetic)
    counts = assigned.groupby(["customer_id", "channel"]).size().unstack(fill_value=0)
    frequent = counts[counts.sum(axis=1) >= 6]
    top_share = (frequent.max(axis=1) / frequent.sum(axis=1)).mean()
    assert top_share > 0.65  # independent uniform channels would give about 0.55


def test_synthetic_log_has_the_cdnow_shape() -> None:
    log = cdnow.synthesize(3000, seed=2)
    assert list(log.columns) == cdnow.TRANSACTION_COLUMNS
    assert sorted(log["customer_id"].unique()) == list(range(1, 3001))
    first = log.groupby("customer_id")["date"].min()
    assert first.min() >= pd.Timestamp(cdnow.START)
    assert first.max() <= pd.Timestamp(cdnow.FIRST_PURCHASE_END)
    assert log["date"].max() <= pd.Timestamp(cdnow.HOLDOUT_END)
    assert (log["number_of_cds"] >= 1).all() and (log["dollar_value"] > 0).all()
    one_timers = (log.groupby("customer_id").size() == 1).mean()
    assert 0.3 < one_timers < 0.8
    cdnow.check_transactions(log)
    pd.testing.assert_frame_equal(log, cdnow.synthesize(3000, seed=2))
    assert not log.equals(cdnow.synthesize(3000, seed=3))
    with pytest.raises(InvalidInput):
        cdnow.synthesize(0)


def test_split_gives_each_party_its_own_table(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    scenario = cdnow.build_scenario(synthetic)
    split = scenario.split()
    assert set(split.tables) == {"label", *cdnow.CHANNELS}
    label = split.tables["label"]
    assert len(label) == 2000 and list(label.columns) == [cdnow.LABEL]
    assert label.refs[0] == "CRM-00000001"
    calibration = scenario.transactions[
        scenario.transactions["date"] <= pd.Timestamp(cdnow.CALIBRATION_END)
    ]
    for channel in cdnow.CHANNELS:
        table = split.tables[channel]
        buyers = calibration.loc[calibration["channel"] == channel, "customer_id"].nunique()
        assert len(table) == buyers
        assert list(table.columns) == cdnow.FEATURES
        assert table.values.shape == (buyers, len(cdnow.FEATURES))
        assert len(set(table.refs)) == len(table.refs)
    # every customer bought somewhere in the calibration period
    held = set().union(*(scenario.features[c].index for c in cdnow.CHANNELS))
    assert held == set(range(1, 2001))
    # the same person is spelt differently by each channel but normalises to one identifier
    person = {
        c: (split.tables[c].phones[0], split.tables[c].emails[0]) for c in ("label", "web", "store")
    }
    first_ids = {c: scenario.features[c].index[0] for c in ("web", "store")}
    for channel, (phone, email) in person.items():
        customer = 1 if channel == "label" else int(first_ids[channel])
        assert normalize_phone(phone, country_code="886") == phone_for(customer)
        assert normalize_email(email) == email_for(customer)
    # and the tables survive the node import format
    split.write(tmp_path)
    for name, table in split.tables.items():
        back = read_channel_table(tmp_path / f"{name}.csv")
        assert back.refs == table.refs and back.columns == table.columns
        np.testing.assert_allclose(back.values, table.values)


def test_test_cohort_is_every_fifth_customer() -> None:
    assert cdnow.in_test_cohort(np.arange(1, 11)).tolist() == [i % 5 == 0 for i in range(1, 11)]
    assert cdnow.is_test_row(10) and not cdnow.is_test_row(11)


def test_bad_files_and_frames_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        cdnow.load_cdnow(tmp_path / "missing.txt")
    three = tmp_path / "three.txt"
    three.write_text("00001 19970101 1\n")
    with pytest.raises(InvalidInput, match="expected 4 columns"):
        cdnow.load_cdnow(three)
    bad_date = tmp_path / "bad.txt"
    bad_date.write_text("00001 19971301 1 11.77\n")
    with pytest.raises(InvalidInput, match="expected type"):
        cdnow.load_cdnow(bad_date)
    late = tiny_log()
    late.loc[0, "date"] = pd.Timestamp(dt.date(1999, 1, 1))
    with pytest.raises(InvalidInput, match="dates must lie"):
        cdnow.build_scenario(late)
    with pytest.raises(InvalidInput, match="lacks columns"):
        cdnow.build_scenario(tiny_log().drop(columns="dollar_value"))


def test_real_cdnow_log_and_split() -> None:
    log = cdnow.load_cdnow(shared_path("data", "cdnow", "CDNOW_master.txt"))
    assert len(log) == 69_659 and log["customer_id"].nunique() == 23_570
    scenario = cdnow.build_scenario(log)
    assert len(scenario.transactions) == 69_659
    assert scenario.transactions["channel"].value_counts().sum() == 69_659
    assert scenario.label.sum() == pytest.approx(776_961.13)
    assert int(cdnow.in_test_cohort(scenario.customer_ids).sum()) == 4_714
    sizes = {c: len(scenario.features[c]) for c in cdnow.CHANNELS}
    assert sizes == {"app": 11_536, "web": 10_217, "store": 7_688}
    counted = sum(int(scenario.features[c]["transactions"].sum()) for c in cdnow.CHANNELS)
    calibration = log[log["date"] <= pd.Timestamp(cdnow.CALIBRATION_END)]
    assert counted == len(calibration)
