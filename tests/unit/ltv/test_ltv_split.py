"""Split learning for LTV: the exchange is exact, stateless where it must be, and learns."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from accord.data import cdnow
from accord.errors import InvalidInput
from accord.scoring.ltv.metrics import normalized_gini
from accord.scoring.ltv.model import train_ltv_model
from accord.scoring.ltv.split import (
    ChannelParty,
    SplitConfig,
    TopParty,
    learning_rate_at,
    node_features,
    summed_embedding,
    torch_threads,
    train_split,
)
from accord.scoring.ziln import ziln_loss


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


SMALL = SplitConfig(embedding_dim=4, bottom_hidden=8, top_hidden=8, epochs=3, batch_size=16)


def two_parties(config: SplitConfig = SMALL) -> tuple[ChannelParty, ChannelParty, TopParty]:
    rng = np.random.default_rng(0)
    n = 50
    a = ChannelParty("a", rng.normal(size=(40, 3)), np.arange(40), n, config, seed=1)
    b = ChannelParty("b", rng.normal(size=(30, 2)), np.arange(20, 50), n, config, seed=2)
    labels = np.where(rng.random(n) < 0.4, rng.lognormal(3, 1, n), 0.0)
    return a, b, TopParty(labels, ["a", "b"], config, seed=3)


def test_exchange_gives_the_gradients_of_the_joint_model() -> None:
    a, b, top = two_parties()
    bottom_a, bottom_b, top_model = (copy.deepcopy(m.model) for m in (a, b, top))
    rows = np.arange(50)

    summed = a.forward(rows) + b.forward(rows)
    loss, grad = top.step(rows, summed, ["a", "b"])
    a.backward(rows, grad)
    b.backward(rows, grad)

    joint = torch.zeros(50, SMALL.embedding_dim)
    joint = joint.index_add(0, torch.arange(40), bottom_a(a._features))
    joint = joint.index_add(0, torch.arange(20, 50), bottom_b(b._features))
    out = top_model(joint, torch.tensor([[1.0, 1.0]]))
    joint_loss = ziln_loss(top._labels, out)
    torch.autograd.backward(joint_loss)

    assert loss == pytest.approx(float(joint_loss.detach()), rel=1e-6)
    for party, reference in ((a, bottom_a), (b, bottom_b), (top, top_model)):
        for got, want in zip(party.model.parameters(), reference.parameters(), strict=True):
            assert got.grad is not None and want.grad is not None
            torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-7)


def test_a_party_contributes_zeros_for_customers_it_lacks() -> None:
    a, b, _ = two_parties()
    embedding = a.embed(np.array([0, 39, 40, 49]))
    assert np.abs(embedding[:2]).sum() > 0
    assert (embedding[2:] == 0).all()
    assert (b.forward(np.arange(20)) == 0).all()
    b.backward(np.arange(20), np.ones((20, SMALL.embedding_dim)))  # nothing to update


def test_backward_needs_no_state_from_forward() -> None:
    a, _, _ = two_parties()
    fresh = copy.deepcopy(a)  # as if a new process had loaded the same weights
    rows = np.array([3, 7, 11, 45])
    grad = np.random.default_rng(1).normal(size=(4, SMALL.embedding_dim))
    a.forward(rows)
    a.backward(rows, grad)
    fresh.backward(rows, grad)
    for x, y in zip(a.model.parameters(), fresh.model.parameters(), strict=True):
        torch.testing.assert_close(x, y)


def test_parties_refuse_malformed_exchanges() -> None:
    a, _, top = two_parties()
    with pytest.raises(InvalidInput, match="aligned row numbers"):
        a.forward(np.array([50]))
    with pytest.raises(InvalidInput, match="gradient"):
        a.backward(np.arange(3), np.ones((3, 2)))
    with pytest.raises(InvalidInput, match="contributors"):
        top.step(np.arange(3), np.zeros((3, SMALL.embedding_dim)), ["c"])
    with pytest.raises(InvalidInput, match="summed embedding"):
        top.step(np.arange(3), np.zeros((3, 5)), ["a"])
    with pytest.raises(InvalidInput, match="twice"):
        ChannelParty("x", np.zeros((2, 1)), np.array([1, 1]), 5, SMALL, seed=0)
    with pytest.raises(InvalidInput, match="non-negative"):
        TopParty(np.array([1.0, -1.0]), ["a"], SMALL, seed=0)
    with pytest.raises(InvalidInput, match="dropout"):
        SplitConfig(party_dropout=1.0)
    with pytest.raises(InvalidInput, match="finite"):
        node_features(np.array([[np.nan]]))


def test_training_with_heavy_dropout_still_runs_every_batch() -> None:
    a, b, top = two_parties(SplitConfig(**{**SMALL.__dict__, "party_dropout": 0.9}))
    history = train_split([a, b], top, np.arange(50), SMALL, np.random.default_rng(0))
    assert history.exchanges == SMALL.epochs * 4  # ceil(50 / 16) batches per epoch
    assert len(history.train_loss) == SMALL.epochs and np.isfinite(history.train_loss).all()
    assert summed_embedding([a, b], np.arange(5)).shape == (5, SMALL.embedding_dim)


def test_learning_rate_decays_to_its_final_share() -> None:
    config = SplitConfig(epochs=11, learning_rate=1e-2, final_rate_share=0.25)
    assert learning_rate_at(0, config) == pytest.approx(1e-2)
    assert learning_rate_at(10, config) == pytest.approx(2.5e-3)
    assert learning_rate_at(5, config) == pytest.approx(1e-2 * (0.25 + 0.75 * 0.5))


@pytest.fixture(scope="module")
def synthetic_scenario() -> cdnow.LtvScenario:
    return cdnow.build_scenario(cdnow.synthesize(3000, seed=4))


def _inputs(
    scenario: cdnow.LtvScenario,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    ids = scenario.customer_ids
    features = {c: scenario.features[c].to_numpy() for c in cdnow.CHANNELS}
    rows_of = {c: np.searchsorted(ids, scenario.features[c].index.to_numpy()) for c in features}
    return features, rows_of, scenario.label.to_numpy()


def test_split_model_learns_and_serves_any_subset(synthetic_scenario: cdnow.LtvScenario) -> None:
    features, rows_of, labels = _inputs(synthetic_scenario)
    test = cdnow.in_test_cohort(synthetic_scenario.customer_ids)
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    config = SplitConfig(epochs=6, average_last=3)
    model = train_ltv_model(features, rows_of, labels, train_rows, config)
    assert model.history.train_loss[-1] < model.history.train_loss[0]
    # calibrated: predicted and actual totals agree on the training customers
    fitted = model.predict(train_rows).expected().sum()
    assert fitted == pytest.approx(labels[train_rows].sum(), rel=1e-3)
    full = model.predict(test_rows).expected()
    assert normalized_gini(full, labels[test_rows]) > 0.6
    app_only = model.predict(test_rows, ["app"]).expected()
    assert np.isfinite(app_only).all() and not np.allclose(app_only, full)
    # each subset is calibrated on the training customers too
    app_fitted = model.predict(train_rows, ["app"]).expected().sum()
    assert app_fitted == pytest.approx(labels[train_rows].sum(), rel=1e-3)
    assert model.scale(["app"]) != model.scale()
    assert normalized_gini(app_only, labels[test_rows]) < normalized_gini(full, labels[test_rows])
    with pytest.raises(InvalidInput, match="unknown party"):
        model.predict(test_rows, ["tv"])
    with pytest.raises(InvalidInput, match="unknown party"):
        model.predict(test_rows, [])
    again = train_ltv_model(features, rows_of, labels, train_rows, config)
    np.testing.assert_array_equal(again.predict(test_rows).expected(), full)
