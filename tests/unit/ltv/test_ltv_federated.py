"""LTV on the trust model's machinery: the ZILN head behind masked sums, and P2 below k."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from accord.data import cdnow
from accord.errors import InvalidInput
from accord.scoring import ziln
from accord.scoring.ltv.federated import LTV_SPLIT, FederatedLtv, train_ltv_federated
from accord.scoring.ltv.metrics import normalized_gini
from accord.scoring.ltv.split import node_features
from accord.scoring.split_model import (
    FixedPointSum,
    MaskedSum,
    Party,
    SplitConfig,
    TopTrainer,
    availability,
    score_split,
    simulation_keys,
    train_split,
)

SHORT = replace(LTV_SPLIT, rounds=6, embedding_dim=8, bottom_hidden=(16,), top_hidden=(8,))


@dataclass(frozen=True)
class Scenario:
    features: dict[str, np.ndarray]
    rows_of: dict[str, np.ndarray]
    labels: np.ndarray
    train_rows: np.ndarray
    test_rows: np.ndarray


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    built = cdnow.build_scenario(cdnow.synthesize(8000, seed=4))
    ids = built.customer_ids
    test = cdnow.in_test_cohort(ids)
    return Scenario(
        features={c: node_features(built.features[c].to_numpy(float)) for c in cdnow.CHANNELS},
        rows_of={
            c: np.searchsorted(ids, built.features[c].index.to_numpy(np.int64))
            for c in cdnow.CHANNELS
        },
        labels=built.label.to_numpy(float),
        train_rows=np.flatnonzero(~test),
        test_rows=np.flatnonzero(test),
    )


@pytest.fixture(scope="module")
def model(scenario: Scenario) -> FederatedLtv:
    return train_ltv_federated(
        scenario.features, scenario.rows_of, scenario.labels, scenario.train_rows, LTV_SPLIT
    )


def parties(s: Scenario) -> list[Party]:
    out = []
    for name, x in s.features.items():
        local = np.full(s.labels.size, -1, dtype=np.int64)
        local[s.rows_of[name]] = np.arange(len(x))
        out.append(Party(name, x.astype(np.float32), local))
    return out


def test_masks_cancel_exactly_under_the_ziln_head(scenario: Scenario) -> None:
    ps = parties(scenario)
    args = (ps, scenario.labels, scenario.train_rows, SHORT)
    masked_sum = MaskedSum(simulation_keys([p.name for p in ps], 0), b"ltv-test")
    masked = train_split(*args, aggregator=masked_sum, seed=2)
    plain = train_split(*args, aggregator=FixedPointSum(), seed=2)
    a = score_split(masked, ps, scenario.test_rows, aggregator=masked_sum).logits
    b = score_split(plain, ps, scenario.test_rows, aggregator=FixedPointSum()).logits
    assert a.shape == (scenario.test_rows.size, 3)
    np.testing.assert_array_equal(a, b)  # bit-identical: the masks change nothing


def test_the_masked_model_ranks_spend_where_k_channels_hold_the_customer(
    scenario: Scenario, model: FederatedLtv
) -> None:
    prediction = model.predict(scenario.test_rows)
    at_k = prediction.federated
    assert 0 < at_k.sum() < at_k.size
    y = scenario.labels[scenario.test_rows]
    assert normalized_gini(y[at_k], prediction.expected()[at_k]) > 0.3
    # held-out likelihood: better than the closed-form fit of the same channel sets
    held = availability(model.parties)[scenario.test_rows]
    priors = [model.priors[tuple(bool(b) for b in row)] for row in held[at_k]]
    prior_params = ziln.ZilnParams(
        *(np.array([getattr(q, f)[0] for q in priors]) for f in ("p", "mu", "sigma"))
    )
    learned, constant = nll(y[at_k], select(prediction.params, at_k)), nll(y[at_k], prior_params)
    assert learned < constant - 0.05
    # the ZILN's 80 % interval holds roughly 80 % of the customers it was asked about
    low, high = prediction.params.interval(0.8)
    inside = ((y >= low) & (y <= high))[at_k].mean()
    assert 0.6 < inside <= 1.0


def test_below_k_the_answer_is_the_prior_of_the_channel_set(
    scenario: Scenario, model: FederatedLtv
) -> None:
    prediction = model.predict(scenario.test_rows)
    held = availability(model.parties)[scenario.test_rows]
    assert ((held.sum(axis=1) >= 2) == prediction.federated).all()
    alone = np.flatnonzero(~prediction.federated)
    for i in alone[:20]:
        prior = model.priors[tuple(bool(b) for b in held[i])]
        assert prediction.params.p[i] == prior.p[0] and prediction.params.mu[i] == prior.mu[0]
    # A prior is the closed-form fit of its group of training customers.
    app_only = (True, False, False)
    rows = scenario.train_rows
    group = rows[(availability(model.parties)[rows] == np.array(app_only)).all(axis=1)]
    expected = ziln.fit_constant(scenario.labels[group])
    assert model.priors[app_only].p[0] == pytest.approx(expected.p[0])
    # Served by one channel only, no customer reaches k: nothing is federated.
    one = model.predict(scenario.test_rows, use=["app"])
    assert not one.federated.any()


def select(params: ziln.ZilnParams, mask: np.ndarray) -> ziln.ZilnParams:
    return ziln.ZilnParams(params.p[mask], params.mu[mask], params.sigma[mask])


def nll(y: np.ndarray, params: ziln.ZilnParams) -> float:
    """Mean negative log-likelihood of spends under per-customer ZILN parameters."""
    t = torch.from_numpy
    logit = t(np.log(params.p / (1 - params.p)))
    return float(-ziln.ziln_log_likelihood(t(y), logit, t(params.mu), t(params.sigma)).mean())


def test_spend_labels_are_checked() -> None:
    config = replace(SHORT, head="ziln")
    top = TopTrainer(2, config, seed=0)
    total = np.zeros((3, config.embedding_dim))
    sources = np.ones((3, 2), dtype=bool)
    with pytest.raises(InvalidInput, match="non-negative"):
        top.step(total, [1.0, -2.0, 0.0], sources, 0)
    with pytest.raises(InvalidInput, match="non-negative"):
        top.step(total, [1.0, float("nan"), 0.0], sources, 0)
    binary = TopTrainer(2, SplitConfig(embedding_dim=config.embedding_dim), seed=0)
    with pytest.raises(InvalidInput, match="0 or 1"):
        binary.step(total, [1.0, 25.0, 0.0], sources, 0)
    with pytest.raises(InvalidInput, match="head must be one of"):
        SplitConfig(head="poisson")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="non-negative"):
        train_ltv_federated({}, {}, [-1.0], [0])


def test_the_ziln_head_starts_at_the_constant_fit_of_its_labels() -> None:
    config = replace(SHORT, head="ziln")
    top = TopTrainer(2, config, seed=0)
    rng = np.random.default_rng(0)
    y = np.where(rng.random(400) < 0.3, rng.lognormal(3.0, 0.8, 400), 0.0)
    sources = np.ones((400, 2), dtype=bool)
    total = np.zeros((400, config.embedding_dim))
    top.model.start_from(y)
    start = ziln.params_from_output_array(top.logits(total, sources))
    fit = ziln.fit_constant(y)
    # the last layer's weights are shrunk, so the output is the bias up to a small term
    assert np.allclose(start.p, fit.p[0], atol=0.05)
    assert np.allclose(start.mu, fit.mu[0], atol=0.2)


def test_the_cli_default_rounds_are_the_models_own() -> None:
    # the CLI keeps its own copy so `accord train --help` does not import torch
    from accord.cli.train_cmd import DEFAULT_ROUNDS
    from accord.scoring.split_model import SplitConfig

    assert {"trust": SplitConfig().rounds, "ltv": LTV_SPLIT.rounds} == DEFAULT_ROUNDS
