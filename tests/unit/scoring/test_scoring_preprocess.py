"""A node's preprocessing: fitted on its own rows, JSON round trip, categories, missing values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from accord.data.uci import CHANNEL_COLUMNS, CHANNELS, split_by_channel, synthesize
from accord.errors import InvalidInput
from accord.schema import ColumnType
from accord.scoring.preprocess import (
    CLIP,
    Preprocessor,
    choose_recipe,
    fit_preprocessor,
    signed_log1p,
)


@pytest.fixture(scope="module")
def tables():  # type: ignore[no-untyped-def]
    return split_by_channel(synthesize(1500, seed=3), "realistic").tables


@pytest.mark.parametrize("channel", CHANNELS)
def test_state_round_trips_through_json(tables, channel: str) -> None:  # type: ignore[no-untyped-def]
    table = tables[channel]
    pre = fit_preprocessor(table.columns, table.values)
    text = json.dumps(pre.to_dict())  # plain JSON, nothing exotic inside
    again = Preprocessor.from_json(text)
    assert again == pre
    np.testing.assert_array_equal(again.transform(table.values), pre.transform(table.values))
    assert len(pre.feature_names()) == pre.n_features


def test_uci_recipes_are_chosen_from_the_columns() -> None:
    assert choose_recipe(CHANNEL_COLUMNS["pay"]) == "uci-pay"
    assert choose_recipe(CHANNEL_COLUMNS["shop"]) == "uci-shop"
    assert choose_recipe(CHANNEL_COLUMNS["social"]) == "uci-social"
    assert choose_recipe(["spend", "visits"]) == "identity"


def test_pay_recipe_adds_status_levels_and_late_counts(tables) -> None:  # type: ignore[no-untyped-def]
    table = tables["pay"]
    pre = fit_preprocessor(table.columns, table.values)
    names = pre.feature_names()
    assert "pay.late_months" in names
    assert "PAY_0.status=2" in names
    x = pre.transform(table.values)
    late = x[:, names.index("pay.late_months")]
    raw_late = (table.values > 0).sum(axis=1)
    # Standardised, so monotone in the raw count.
    assert np.corrcoef(late, raw_late)[0, 1] > 0.999


def test_statistics_come_from_the_fitting_rows_only() -> None:
    columns: dict[str, ColumnType] = {"spend": "float", "age": "int"}
    own = np.array([[10.0, 30.0], [20.0, 40.0], [30.0, 50.0]])
    pre = fit_preprocessor(columns, own)
    other = np.array([[1e6, 90.0]])
    before = pre.to_dict()
    x = pre.transform(other)
    assert pre.to_dict() == before  # transforming never refits
    out = pre.transform(own)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=1e-6)
    assert x.max() <= CLIP  # a wild value is clipped


def test_amounts_get_signed_log_before_scaling() -> None:
    columns: dict[str, ColumnType] = {"bill": "float"}
    rng = np.random.default_rng(0)
    bill = np.concatenate([rng.lognormal(8, 2, 500), -rng.lognormal(6, 1, 20)])
    pre = fit_preprocessor(columns, bill[:, None])
    assert pre.columns[0].kind == "amount"  # heavy tail → amount
    x = pre.transform(bill[:, None])[:, 0]
    expected = signed_log1p(bill)
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(x, np.clip(expected, -CLIP, CLIP), rtol=1e-5, atol=1e-5)


def test_categories_rare_unseen_and_missing() -> None:
    columns: dict[str, ColumnType] = {"kind": "categorical"}
    values = np.array([[1.0]] * 30 + [[2.0]] * 20 + [[7.0]] * 2 + [[np.nan]] * 3)
    pre = fit_preprocessor(columns, values)
    col = pre.columns[0]
    assert col.categories == (1.0, 2.0)
    assert col.other  # 7 is rare
    assert col.missing_indicator
    assert pre.feature_names() == ["kind=1", "kind=2", "kind=other", "kind.missing"]
    out = pre.transform(np.array([[1.0], [2.0], [9.0], [np.nan]]))
    np.testing.assert_array_equal(
        out,
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    )


def test_missing_numeric_becomes_zero_with_indicator() -> None:
    columns: dict[str, ColumnType] = {"age": "int"}
    pre = fit_preprocessor(columns, np.array([[20.0], [40.0], [np.nan]]))
    out = pre.transform(np.array([[np.nan], [30.0]]))
    np.testing.assert_array_equal(out, [[0.0, 1.0], [0.0, 0.0]])


def test_malformed_state_and_input_are_refused() -> None:
    columns: dict[str, ColumnType] = {"age": "int"}
    pre = fit_preprocessor(columns, np.array([[20.0], [40.0]]))
    state = pre.to_dict()
    with pytest.raises(InvalidInput, match="recipe"):
        Preprocessor.from_dict({**state, "recipe": "exec"})
    bad = json.loads(json.dumps(state))
    bad["columns"][0]["scale"] = 0
    with pytest.raises(InvalidInput, match="scale"):
        Preprocessor.from_dict(bad)
    with pytest.raises(InvalidInput, match="version"):
        Preprocessor.from_dict({**state, "version": 99})
    with pytest.raises(InvalidInput, match="JSON"):
        Preprocessor.from_json("{not json")
    with pytest.raises(InvalidInput, match="rows × 1"):
        pre.transform(np.zeros((2, 3)))
    with pytest.raises(InvalidInput, match="infinite"):
        pre.transform(np.array([[np.inf]]))
