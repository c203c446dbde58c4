"""Scenario data: the synthetic generator and the real-data split follow DESIGN.md exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import shared_path

from accord.data.channel_file import read_channel_table
from accord.data.uci import (
    CHANNEL_COLUMNS,
    LABEL,
    UNKNOWN_ID_BASE,
    load_uci_csv,
    local_ref,
    phone_for,
    split_by_channel,
    synthesize,
)
from accord.errors import InvalidInput


def test_synthetic_frame_has_the_uci_shape_and_signal() -> None:
    frame = synthesize(4000, seed=1)
    assert list(frame.columns[:1]) == ["ID"]
    assert LABEL in frame.columns
    rate = frame[LABEL].mean()
    assert 0.15 < rate < 0.32
    # the repayment channel carries the strongest signal, as in the real data
    corr = {
        c: abs(np.corrcoef(frame[cols].to_numpy().mean(axis=1), frame[LABEL])[0, 1])
        for c, cols in CHANNEL_COLUMNS.items()
    }
    assert corr["pay"] > corr["social"]
    assert synthesize(50, seed=3).equals(synthesize(50, seed=3))


def test_full_coverage_gives_every_channel_every_customer() -> None:
    split = split_by_channel(synthesize(300), "full")
    assert {k: len(t) for k, t in split.tables.items()} == {
        "label": 300,
        "pay": 300,
        "shop": 300,
        "social": 300,
    }
    assert list(split.tables["shop"].columns) == CHANNEL_COLUMNS["shop"]
    assert list(split.tables["label"].columns) == [LABEL]


def test_realistic_coverage_uses_the_fixed_masks() -> None:
    n = 30_000
    split = split_by_channel(synthesize(n), "realistic")
    rng = np.random.default_rng(0)
    expected = {
        c: int((rng.random(n) < p).sum())
        for c, p in (("pay", 0.95), ("shop", 0.90), ("social", 0.85))
    }
    for channel, kept in expected.items():
        assert len(split.tables[channel]) == kept + 1500
    known_refs = {local_ref("pay", i) for i in range(1, n + 1)}
    pay_refs = split.tables["pay"].refs
    assert sum(r not in known_refs for r in pay_refs) == 1500
    assert local_ref("pay", UNKNOWN_ID_BASE) in pay_refs


def test_each_channel_spells_identifiers_its_own_way() -> None:
    split = split_by_channel(synthesize(5), "full")
    phones = {c: t.phones[0] for c, t in split.tables.items()}
    assert phones["pay"] == phone_for(1)
    assert len(set(phones.values())) >= 3
    refs = {c: t.refs[0] for c, t in split.tables.items()}
    assert len(set(refs.values())) == 4


def test_channel_files_round_trip(tmp_path: Path) -> None:
    split = split_by_channel(synthesize(40), "realistic")
    split.write(tmp_path)
    back = read_channel_table(tmp_path / "social.csv")
    original = split.tables["social"]
    assert back.refs == original.refs
    assert back.columns == original.columns
    np.testing.assert_allclose(back.values, original.values)


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("local_ref,phone,email,PAY_0\nr1,p,e,1.5\n", "whole number"),
        ("local_ref,phone,email,PAY_0\nr1,p,e,abc\n", "not a number"),
        ("local_ref,phone,email,PAY_0\nr1,p,e,1\nr1,p,e,2\n", "appears twice"),
        ("local_ref,phone,email,WRONG\nr1,p,e,1\n", "header must be"),
        ("local_ref,phone,email,PAY_0\nr1,p,e\n", "expected 4 fields"),
        ("local_ref,phone,email,PAY_0\nr1,p,e,inf\n", "finite"),
    ],
)
def test_bad_channel_files_are_refused_with_file_and_line(
    tmp_path: Path, csv: str, message: str
) -> None:
    (tmp_path / "pay.schema.json").write_text(
        '{"channel": "pay", "columns": [{"name": "PAY_0", "type": "int"}]}'
    )
    (tmp_path / "pay.csv").write_text(csv)
    with pytest.raises(InvalidInput, match=message):
        read_channel_table(tmp_path / "pay.csv")


def test_bad_schema_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pay.csv").write_text("local_ref,phone,email,x\n")
    for schema, message in [
        ("{", "not valid JSON"),
        ('{"channel": "pay", "columns": [{"name": "x", "type": "text"}]}', "has type 'text'"),
        ('{"channel": "pay", "columns": [{"name": "a@b.c", "type": "int"}]}', "column name"),
        (
            '{"channel": "pay", "columns": [{"name": "x", "type": "int", "values": [1]}]}',
            "exactly 'name' and 'type'",
        ),
    ]:
        (tmp_path / "pay.schema.json").write_text(schema)
        with pytest.raises(InvalidInput, match=message):
            read_channel_table(tmp_path / "pay.csv")


def test_real_uci_file_splits_as_designed() -> None:
    path = shared_path("data", "uci_credit_card", "UCI_Credit_Card.csv")
    frame = load_uci_csv(path)
    assert len(frame) == 30_000
    assert abs(frame[LABEL].mean() - 0.2212) < 0.001
    split = split_by_channel(frame, "realistic")
    assert len(split.tables["label"]) == 30_000
    assert split.tables["label"].refs[0] == "CRM-00000001"
