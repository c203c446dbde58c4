"""The trust experiment end to end at small scale: P7's shape, the bench contract, alignment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.bench.trust_experiment import prepare_trust_data, run_trust_experiment
from accord.data.uci import (
    BILL,
    CHANNEL_COLUMNS,
    LABEL,
    PAY,
    PAY_AMT,
    SOCIAL,
    Coverage,
    split_by_channel,
    synthesize,
)
from accord.scoring.split_model import SplitConfig, availability

BENCH_KEYS = {
    "auc",
    "centralized_auc",
    "best_single_channel_auc",
    "ece",
    "seconds",
    "centralized_seconds",
    "rounds",
    "bytes_sent",
}
LIGHT = SplitConfig(
    embedding_dim=8,
    bottom_hidden=(16,),
    top_hidden=(8,),
    rounds=4,
    local_epochs=2,
    batch_size=128,
    learning_rate=5e-3,
)


def _complementary(n: int, seed: int) -> pd.DataFrame:
    """``synthesize()`` rows, with each channel carrying its own, independent share of the risk.

    In ``synthesize()`` one latent risk drives every channel, so the channels repeat one
    another (gradient boosting on all of them beats the pay columns alone by only ≈ 0.002 AUC)
    and "better than every single channel" cannot show at small scale. Here the shop and social
    blocks are shuffled across customers, and the label adds up one signal per channel.
    """
    frame = synthesize(n, seed=seed)
    rng = np.random.default_rng(seed)
    for cols in (BILL + PAY_AMT, SOCIAL):
        frame[cols] = frame[cols].to_numpy()[rng.permutation(n)]

    def z(v: np.ndarray) -> np.ndarray:
        out: np.ndarray = (v - v.mean()) / v.std()
        return out

    logit = (
        -1.4
        + z(frame[PAY].to_numpy(dtype=float).mean(axis=1))
        + z(np.log1p(frame[BILL].to_numpy(dtype=float).clip(0).mean(axis=1)))
        - z(np.log(frame["LIMIT_BAL"].to_numpy(dtype=float)))
    )
    frame[LABEL] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def test_federation_matches_centralized_and_beats_every_channel() -> None:
    report = run_trust_experiment(_complementary(5000, 3), "full", seed=0)
    assert report.masking
    assert report.auc >= report.centralized_auc - 0.005
    assert report.auc > report.best_single_channel_auc + 0.05
    assert set(report.single_channel_auc) == set(CHANNEL_COLUMNS)
    assert report.scored_fraction == 1.0


def test_report_keeps_the_bench_contract(tmp_path: Path) -> None:
    plot = tmp_path / "calibration.png"
    report = run_trust_experiment(
        synthesize(2500, seed=4), "realistic", seed=1, config=LIGHT, plot_path=plot
    )
    line = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(line) >= BENCH_KEYS
    assert report.rounds == LIGHT.rounds
    assert report.forward_rounds == 1
    assert report.bytes_sent == report.bytes_up + report.bytes_down > 0
    assert 0.9 < report.scored_fraction < 1.0  # a few customers are held by < 2 nodes
    assert report.excluded_training_rows > 0
    assert 0.5 < report.auc <= 1.0
    assert 0.0 <= report.ece < 0.1
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_prepare_aligns_each_channel_to_the_label_node() -> None:
    frame = synthesize(800, seed=9)
    data = prepare_trust_data(split_by_channel(frame, "realistic"), seed=0)
    by_id = frame.set_index("ID")
    np.testing.assert_array_equal(data.labels, by_id.loc[data.ids, LABEL].to_numpy())
    avail = availability(data.parties)
    assert 0 < avail.mean() < 1
    for party in data.parties:
        held = np.flatnonzero(party.available)
        raw = by_id.loc[data.ids[held], CHANNEL_COLUMNS[party.name]].to_numpy(dtype=float)
        expected = data.preprocessors[party.name].transform(raw)
        np.testing.assert_array_equal(party.features[party.local_row[held]], expected)


def test_rows_split_into_fixed_test_and_seeded_validation() -> None:
    data = prepare_trust_data(split_by_channel(synthesize(1000, seed=2), "full"), seed=5)
    assert set(data.ids[data.test_rows] % 5) == {0}
    assert not set(data.ids[data.train_rows] % 5 == 0) - {False}
    assert not set(data.train_rows) & set(data.validation_rows)
    assert data.train_rows.size + data.validation_rows.size + data.test_rows.size == 1000
    assert 0.05 < data.validation_rows.size / 800 < 0.15
    again = prepare_trust_data(split_by_channel(synthesize(1000, seed=2), "full"), seed=5)
    np.testing.assert_array_equal(again.validation_rows, data.validation_rows)


@pytest.mark.parametrize("coverage", ["full", "realistic"])
def test_a_ready_split_gives_the_same_report_as_the_frame(coverage: Coverage) -> None:
    frame = synthesize(1200, seed=8)
    a = run_trust_experiment(
        frame, coverage, seed=0, config=LIGHT, single_channels=False, masking=False
    )
    b = run_trust_experiment(
        split_by_channel(frame, coverage),
        coverage,
        seed=0,
        config=LIGHT,
        single_channels=False,
        masking=False,
    )
    assert a.auc == b.auc
    assert a.centralized_auc == b.centralized_auc
    assert a.best_single_channel == ""
