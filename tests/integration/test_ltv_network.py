"""LTV over the network, as a deployment runs it: channels import purchase logs, derive their
features inside the consent gate, align with the brand's spend labels, and train the ZILN head
by masked split learning; the model is stored and recorded like the trust model.

Issue 8: node features from each node's own transactions through the gate; the ZILN head on
the federated top model with party dropout; a predicted spend with an interval.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
from helpers import make_pki
from inprocess import DirectLink, InProcessLedger, Network, build
from sqlalchemy import text

from accord.consent.events import Record, decode
from accord.coordinator.model_store import load_model, save_model
from accord.coordinator.own_spend import grpc_asker, lone_training_rows, own_channel_scales
from accord.coordinator.training import TrainingRun, load_training_set
from accord.data import cdnow
from accord.data.purchase_features import FEATURES, purchase_features
from accord.node.gate import subject_access
from accord.node.own_spend import OwnSpend
from accord.node.training import GatedStoreData, SqlStateStore, TrainingParticipant
from accord.proto.v1 import node_pb2, node_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.scoring import ziln
from accord.scoring.ltv.fallback import (
    MIN_SCALE_CUSTOMERS,
    fit_own_spend_model,
    own_summary,
)
from accord.scoring.ltv.federated import LTV_SPLIT

TRAIN = ("model-training",)
CHANNELS = cdnow.CHANNELS


@pytest.fixture(scope="module")
def scenario() -> cdnow.LtvScenario:
    return cdnow.build_scenario(cdnow.synthesize(3000, seed=11))


@pytest.fixture
def network(
    tmp_path: Path, scenario: cdnow.LtvScenario
) -> Iterator[tuple[Network, str, dict[str, set[str]]]]:
    pki = make_pki(tmp_path / "pki", ["coordinator", *CHANNELS, "label"])
    logs = scenario.purchase_logs()
    label = scenario.split().tables["label"]
    tables = {"label": label, **logs}
    # every customer consents to training, except every seventh at the app channel
    withheld = {"app": set(list(logs["app"].customers)[::7])}
    consents = {
        name: {
            ref: TRAIN
            for ref in (t.refs if name == "label" else t.customers)  # type: ignore[union-attr]
            if ref not in withheld.get(name, set())
        }
        for name, t in tables.items()
    }
    net = build(tmp_path, pki, tables, consents, as_of=cdnow.CALIBRATION_END)
    try:
        yield net, net.orchestrator.run().run_id, withheld
    finally:
        net.stop()


def participants(net: Network) -> dict[str, TrainingParticipant]:
    view = net.registry.view()
    peers = {n.channel: n.kx_key for n in view.nodes if n.role == "feature"}
    return {
        c: TrainingParticipant(
            c,
            GatedStoreData(net.nodes[c].node.engine, net.nodes[c].gate),
            SqlStateStore(net.nodes[c].node.engine),
            net.nodes[c].node.keys.kx,
            peers,
        )
        for c in CHANNELS
    }


def test_the_gate_derives_purchase_features_only_for_consented_customers(
    network: tuple[Network, str, dict[str, set[str]]], scenario: cdnow.LtvScenario
) -> None:
    net, _, withheld = network
    app = net.nodes["app"]
    log = scenario.purchase_logs()["app"]
    refs = list(log.customers)[:60]
    released = app.gate.open("model-training", "test-session", refs)
    # the withheld customers are refused, and nothing of theirs is computed
    assert set(released.refused) == set(refs) & withheld["app"]
    assert set(released.refs) == set(refs) - withheld["app"]
    assert released.columns == tuple(FEATURES)
    expected = purchase_features(log.purchases, cdnow.CALIBRATION_END, key="local_ref")
    np.testing.assert_allclose(released.features, expected.loc[list(released.refs)].to_numpy())
    # each release is a data use on the ledger, referencing the consent
    with app.node.engine.connect() as conn:
        used = conn.execute(
            text("SELECT COUNT(*) FROM data_use WHERE session = 'test-session'")
        ).scalar()
    assert used == len(released.refs)
    # the customer's own export lists the purchases the node holds
    export = subject_access(app.node.engine, refs[0])
    assert export is not None and len(export["purchases"]) >= 1  # type: ignore[arg-type]


def test_ltv_trains_over_masked_sums_and_is_stored_with_its_spend_scale(
    network: tuple[Network, str, dict[str, set[str]]], scenario: cdnow.LtvScenario
) -> None:
    net, run, withheld = network
    data = load_training_set(net.ledger.store.engine, run, holdout=0.2)
    assert data.nodes == sorted(CHANNELS)
    # the labels are the brand's holdout spends, keyed by row key only
    assert (data.labels >= 0).all() and (data.labels > 0).mean() > 0.2
    # a customer who withheld consent at app has no app row key
    held_by_app = sum(k is not None for k in data.keys["app"])
    assert held_by_app == len(scenario.purchase_logs()["app"].customers) - len(withheld["app"])
    link = DirectLink(participants(net))
    # LTV_SPLIT's gentle learning rate was chosen for CDNOW's ~19k training customers over 20
    # exchanges; this small network gets 12, so it learns faster to be judged on its ranking
    quick = replace(LTV_SPLIT, rounds=12, local_epochs=2, learning_rate=3e-3)
    model = TrainingRun(link, data, quick, seed=3).run()
    assert model.kind == "ltv" and model.model_id.startswith("ltv-")
    assert model.report.rounds == 12 and not model.report.dropped_nodes
    m = model.metrics
    # rows held by ≥ 2 channels: the model ranks spend and its interval holds most customers
    assert 0 < m["scored_fraction"] < 1
    assert m["gini"] > 0.3 and m["spearman"] > 0.2, m
    assert 0.6 <= m["interval_coverage"] <= 0.97, m
    # the head's numbers are ZILN parameters: positive spends and ordered intervals
    out = model.evaluated_logits[~np.isnan(model.evaluated_logits).any(axis=1)]
    params = model.spend_scale.apply(ziln.params_from_output_array(out))
    low, high = params.interval(0.8)
    assert (params.expected() > 0).all() and (low <= high).all()
    # stored and recorded like the trust model, under its own kind
    writer = InProcessLedger(net.ledger, "coordinator")
    index = save_model(net.ledger.store.engine, writer, model, alignment_run=run, consents_as_of=0)
    loaded = load_model(net.ledger.store.engine, kind="ltv")
    assert loaded.model_id == model.model_id and loaded.kind == "ltv"
    assert loaded.spend_scale == model.spend_scale
    (entry,) = net.ledger.entries(index, 1)
    record = decode(entry.data)
    assert isinstance(record, Record) and record.kind == "model.version"
    assert record.body["kind"] == "ltv" and record.body["metrics"]["gini"] > 0.3


def test_a_lone_channel_releases_one_group_sum_that_scales_its_own_estimates(
    network: tuple[Network, str, dict[str, set[str]]],
    scenario: cdnow.LtvScenario,
    tmp_path: Path,
) -> None:
    """Below k, each channel answers with its own BG/NBD + Gamma-Gamma; the coordinator's
    factor for it comes from one sum the channel releases over mTLS, once per model."""
    net, run, withheld = network
    data = load_training_set(net.ledger.store.engine, run, holdout=0.2)
    creds = PartyCredentials.load(tmp_path / "pki" / "coordinator")
    ask = grpc_asker(creds, {c: p.endpoint for c, p in net.nodes.items()})
    lone = lone_training_rows(data)
    assert all(rows.size >= MIN_SCALE_CUSTOMERS for rows in lone.values())
    got = own_channel_scales(data, "ltv-own-test", ask, horizon_days=cdnow.HOLDOUT_DAYS)
    assert got.skipped == {} and set(got.scales) == set(CHANNELS)
    assert got.customers == {c: int(rows.size) for c, rows in lone.items()}

    # web's factor, recomputed without the node: its own model fitted on its whole log (every
    # web customer consented), summed over the training customers only web holds
    log = scenario.purchase_logs()["web"]
    features = purchase_features(log.purchases, cdnow.CALIBRATION_END, key="local_ref")
    summary = own_summary(features)
    predicted = fit_own_spend_model(summary).estimate(summary, cdnow.HOLDOUT_DAYS)
    web = net.nodes["web"]
    refs = [web.alignment.local_ref(run, data.keys["web"][r]) for r in lone["web"]]  # type: ignore[arg-type]
    expected = float(data.labels[lone["web"]].sum()) / float(predicted.loc[refs].sum())
    assert got.scales["web"] == pytest.approx(expected, rel=1e-9)
    assert 0.2 < got.scales["web"] < 5

    # the fit used every consented customer through the gate: one data use each (app's
    # withheld customers are not among them)
    for channel, parts in net.nodes.items():
        if channel == "label":
            continue
        with parts.node.engine.connect() as conn:
            used = conn.execute(
                text("SELECT COUNT(*) FROM data_use WHERE session = 'own-spend:ltv-own-test'")
            ).scalar()
        customers = scenario.purchase_logs()[channel].customers
        assert used == len(set(customers) - withheld.get(channel, set()))

    # a scoring request applies the kept parameters to the one customer the gate released
    kept = OwnSpend(web.node.engine, "web", web.gate)
    released = web.gate.require("model-training", "score-1", refs[0])
    assert kept.estimate("ltv-own-test", released) == pytest.approx(predicted.loc[refs[0]])

    # one sum per alignment run: a second, differing by one customer, is refused, whatever
    # model id it names, and changes nothing
    for model in ("ltv-own-test", "ltv-another"):
        request = node_pb2.OwnSpendSumRequest(
            model=model,
            alignment_run=run,
            row_keys=[data.keys["web"][r] for r in lone["web"][1:]],
            horizon_days=cdnow.HOLDOUT_DAYS,
        )
        with pytest.raises(grpc.RpcError) as again:
            ask("web", request)
        assert again.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert "one group sum for alignment run" in again.value.details()
    assert not kept.has_model("ltv-another")
    # the same question again (a lost reply, or a newer model of the same run): the same answer
    same = node_pb2.OwnSpendSumRequest(
        model="ltv-newer",
        alignment_run=run,
        row_keys=[data.keys["web"][r] for r in lone["web"]],
        horizon_days=cdnow.HOLDOUT_DAYS,
    )
    repeated = ask("web", same)
    assert repeated.customers == got.customers["web"]
    assert float(data.labels[lone["web"]].sum()) / repeated.estimate_sum == pytest.approx(
        got.scales["web"], rel=1e-12
    )
    assert kept.has_model("ltv-newer")
    # fewer than the minimum: INVALID_ARGUMENT, and no model is kept for the new id
    few = node_pb2.OwnSpendSumRequest(
        model="ltv-few",
        alignment_run=run,
        row_keys=list(request.row_keys[: MIN_SCALE_CUSTOMERS - 1]),
        horizon_days=cdnow.HOLDOUT_DAYS,
    )
    with pytest.raises(grpc.RpcError) as small:
        ask("web", few)
    assert small.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at least {MIN_SCALE_CUSTOMERS}" in small.value.details()
    assert not kept.has_model("ltv-few")
    # only the coordinator may ask
    app_creds = PartyCredentials.load(tmp_path / "pki" / "app")
    with app_creds.channel(web.endpoint, "web") as channel:
        with pytest.raises(grpc.RpcError) as denied:
            node_pb2_grpc.NodeServiceStub(channel).OwnSpendSum(few, timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
