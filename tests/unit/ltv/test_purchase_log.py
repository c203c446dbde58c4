"""A channel's purchase log: the file, its validation, and the node store that keeps it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from accord.data import cdnow
from accord.data.purchase_features import FEATURES, purchase_features
from accord.data.purchase_file import HEADER, read_purchase_log
from accord.data.uci import local_ref
from accord.errors import InvalidInput
from accord.node import store
from accord.store.engine import make_engine
from accord.store.migrate import upgrade

GOOD = "app-1,+886900000001,a@example.com,1997-01-02,2,20.5\n"


def write(tmp_path: Path, *rows: str, name: str = "app.purchases.csv") -> Path:
    path = tmp_path / name
    path.write_text(",".join(HEADER) + "\n" + "".join(rows))
    return path


def test_the_scenario_logs_round_trip_and_give_the_scenarios_features(tmp_path: Path) -> None:
    scenario = cdnow.build_scenario(cdnow.synthesize(400, seed=2))
    for channel, log in scenario.purchase_logs().items():
        back = read_purchase_log(log.write(tmp_path))
        assert back.channel == channel and back.customers == log.customers
        assert len(back.purchases) == len(log.purchases)
        got = purchase_features(back.purchases, cdnow.CALIBRATION_END, key="local_ref")
        # the node's features are the scenario's features, customer for customer
        ids = scenario.features[channel].index
        refs = [local_ref(channel, int(i)) for i in ids[:5]]
        np.testing.assert_allclose(
            got.loc[refs].to_numpy(), scenario.features[channel].iloc[:5].to_numpy()
        )


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        (["app-1,+886900000001,a@example.com,97-01-02,2,20.5\n"], ":2: date '97-01-02'"),
        (["app-1,+886900000001,a@example.com,1997-01-02,two,20.5\n"], "number_of_cds 'two'"),
        (["app-1,+886900000001,a@example.com,1997-01-02,2,-1\n"], "finite amount"),
        (["app-1,+886900000001,a@example.com,1997-01-02,2,nan\n"], "finite amount"),
        ([GOOD, "app-1,+886900000002,a@example.com,1997-01-03,1,5\n"], ":3: 'app-1' has other"),
        (["app-1,+886900000001,a@example.com,1997-01-02,2\n"], "expected 6 fields"),
        ([], "no purchases"),
    ],
)
def test_bad_purchase_logs_are_refused_naming_line_and_field(
    tmp_path: Path, rows: list[str], needle: str
) -> None:
    with pytest.raises(InvalidInput, match=needle):
        read_purchase_log(write(tmp_path, *rows))


def test_a_log_must_be_named_for_its_channel(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"<channel>\.purchases\.csv"):
        read_purchase_log(write(tmp_path, GOOD, name="app.csv"))


def test_importing_replaces_the_store_and_erasure_removes_purchases(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'node.db'}")
    upgrade(engine, "node")
    log = read_purchase_log(
        write(tmp_path, GOOD, "app-2,+886900000002,b@example.com,1997-02-01,1,9\n", GOOD)
    )
    with pytest.raises(InvalidInput, match="import only your own purchases"):
        store.import_purchases(engine, log, "web", dt.date(1997, 9, 30))
    assert store.import_purchases(engine, log, "app", dt.date(1997, 9, 30)) == 2
    assert [c.name for c in store.schema(engine)] == FEATURES
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM purchase")).scalar() == 3
        assert (
            conn.execute(text("SELECT as_of_day FROM purchase_window")).scalar()
            == (dt.date(1997, 9, 30) - dt.date(1970, 1, 1)).days
        )
    store.delete_customer(engine, "app-1")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM purchase")).scalar() == 1
    # a table import afterwards leaves no purchase log or cut-off behind
    from accord.data.channel_file import ChannelTable

    table = ChannelTable("app", ["x"], [""], [""], {"spend": "float"}, np.array([[1.0]]))
    store.import_table(engine, table, "app")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM purchase")).scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM purchase_window")).scalar() == 0
