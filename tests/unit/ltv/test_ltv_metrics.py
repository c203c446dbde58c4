"""LTV metrics on small examples computed by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accord.errors import InvalidInput
from accord.scoring.ltv.metrics import (
    LtvMetrics,
    aggregate_error_pct,
    decile_chart,
    decile_mape_pct,
    decile_table,
    ltv_metrics,
    normalized_gini,
    spearman,
)


def test_aggregate_error_is_the_relative_error_of_the_totals() -> None:
    predicted, actual = np.array([10.0, 20.0, 0.0]), np.array([0.0, 20.0, 20.0])
    assert aggregate_error_pct(predicted, actual) == pytest.approx(-25.0)


def test_decile_mape_on_twenty_customers() -> None:
    predicted = np.arange(1.0, 21.0)  # deciles are the pairs (1, 2), (3, 4), ...
    actual = predicted.copy()
    actual[0], actual[1] = 2.0, 4.0  # first decile: predicted 3, actual 6 -> 50 % off
    table = decile_table(predicted, actual)
    assert table.sizes.tolist() == [2] * 10
    assert table.predicted.tolist() == [3.0, 7.0, 11.0, 15.0, 19.0, 23.0, 27.0, 31.0, 35.0, 39.0]
    assert table.actual[0] == 6.0
    assert decile_mape_pct(predicted, actual) == pytest.approx(5.0)
    assert aggregate_error_pct(predicted, actual) == pytest.approx(100 * (210 - 213) / 213)


def test_deciles_sort_ascending_and_ties_keep_input_order() -> None:
    predicted = np.ones(10)
    actual = np.arange(1.0, 11.0)
    table = decile_table(predicted, actual)
    assert table.actual.tolist() == actual.tolist()
    # uneven cohorts: numpy.array_split puts the extra customers in the first groups
    assert decile_table(np.arange(23.0), np.ones(23)).sizes.tolist() == [3, 3, 3] + [2] * 7


def test_normalized_gini_by_hand() -> None:
    actual = np.array([0.0, 0.0, 1.0, 3.0])
    # perfect ordering: cumulative shares 0.75, 1, 1, 1 -> Gini 3.75/4 - 5/8 = 0.3125
    assert normalized_gini(np.array([1.0, 2.0, 3.0, 4.0]), actual) == pytest.approx(1.0)
    assert normalized_gini(np.array([4.0, 3.0, 2.0, 1.0]), actual) == pytest.approx(-1.0)
    # order by prediction: actual 0, 3, 1, 0 -> shares 0, .75, 1, 1 -> 2.75/4 - 5/8 = 0.0625
    assert normalized_gini(np.array([4.0, 1.0, 2.0, 3.0]), actual) == pytest.approx(0.2)


def test_spearman_uses_average_ranks() -> None:
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == pytest.approx(1.0)
    # ranks: predicted 1,2,3,4; actual with a tie 1.5,1.5,3,4 -> Pearson of the ranks
    expected = np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3, 4])[0, 1]
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 0.0, 1.0, 3.0])) == (
        pytest.approx(expected)
    )
    assert spearman(np.ones(4), np.array([0.0, 0.0, 1.0, 3.0])) == 0.0


def test_ltv_metrics_and_comparison() -> None:
    rng = np.random.default_rng(0)
    actual = rng.lognormal(3, 1, 200)
    good = ltv_metrics(actual * 1.01 + 0.1, actual)
    poor = ltv_metrics(rng.permutation(actual) * 1.5, actual)
    assert good.gini > 0.99 and good.spearman > 0.99
    assert good.beats(poor) and not poor.beats(good)
    assert set(good.as_dict()) == {"aggregate_error_pct", "decile_mape_pct", "gini", "spearman"}
    assert LtvMetrics(1.0, 1.0, 0.5, 0.5).beats(LtvMetrics(-2.0, 2.0, 0.4, 0.4))


def test_metrics_refuse_what_they_cannot_measure() -> None:
    with pytest.raises(InvalidInput, match="predictions for"):
        ltv_metrics(np.ones(3), np.ones(4))
    with pytest.raises(InvalidInput, match="spent nothing"):
        aggregate_error_pct(np.ones(3), np.zeros(3))
    with pytest.raises(InvalidInput, match="negative"):
        aggregate_error_pct(np.ones(3), np.array([1.0, -1.0, 2.0]))
    with pytest.raises(InvalidInput, match="finite"):
        aggregate_error_pct(np.array([1.0, np.nan]), np.ones(2))
    actual = np.r_[np.zeros(10), np.ones(10)]
    with pytest.raises(InvalidInput, match="decile"):
        decile_mape_pct(np.arange(20.0), actual)  # the lowest deciles spent nothing


def test_decile_chart_writes_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    actual = rng.lognormal(3, 1, 100)
    path = decile_chart(
        tmp_path / "chart" / "deciles.png", {"a": actual * 1.1, "b": actual[::-1]}, actual
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InvalidInput):
        decile_chart(tmp_path / "empty.png", {}, actual)
