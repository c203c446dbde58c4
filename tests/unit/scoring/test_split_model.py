"""The split-learning exchange: masking changes nothing, P2 holds per row, state survives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from accord.bench.trust_experiment import TrustData, prepare_trust_data
from accord.crypto.masking import FRACTIONAL_BITS
from accord.data.uci import split_by_channel, synthesize
from accord.errors import InvalidInput
from accord.scoring.metrics import auc
from accord.scoring.split_model import (
    EMBED_BYTES_PER_VALUE,
    EMBEDDING_BOUND,
    GRAD_BYTES_PER_VALUE,
    FixedPointSum,
    JointModel,
    MaskedSum,
    NodeTrainer,
    Party,
    PlainSum,
    RoundPlan,
    RoundPlanner,
    SplitConfig,
    SplitTraining,
    TooFewSources,
    TopTrainer,
    availability,
    party_seed,
    plan_scoring,
    sample_sources,
    scatter_rows,
    score_split,
    simulation_keys,
    train_split,
)

SMALL = SplitConfig(
    embedding_dim=8,
    bottom_hidden=(16,),
    top_hidden=(8,),
    rounds=4,
    local_epochs=2,
    batch_size=64,
    learning_rate=5e-3,
)


@pytest.fixture(scope="module")
def data() -> TrustData:
    return prepare_trust_data(split_by_channel(synthesize(1500, seed=11), "full"), seed=0)


@pytest.fixture(scope="module")
def trained(data: TrustData) -> SplitTraining:
    return train_split(data.parties, data.labels, data.train_rows, SMALL, seed=1)


def _weights(training: SplitTraining) -> list[torch.Tensor]:
    out = [t for n in training.nodes for t in n.model.state_dict().values()]
    return out + list(training.top.model.state_dict().values())


def test_masked_training_is_bit_identical_to_fixed_point(data: TrustData) -> None:
    masked_sum = MaskedSum(simulation_keys(data.names, 0), b"test-run")
    masked = train_split(
        data.parties, data.labels, data.train_rows, SMALL, aggregator=masked_sum, seed=1
    )
    plain = train_split(
        data.parties, data.labels, data.train_rows, SMALL, aggregator=FixedPointSum(), seed=1
    )
    assert masked_sum.matrices_masked == SMALL.rounds * len(data.parties)
    for a, b in zip(_weights(masked), _weights(plain), strict=True):
        assert torch.equal(a, b)
    s1 = score_split(masked, data.parties, data.test_rows, aggregator=masked_sum)
    s2 = score_split(plain, data.parties, data.test_rows, aggregator=FixedPointSum())
    np.testing.assert_array_equal(s1.logits, s2.logits)


def test_fixed_point_sum_is_the_float_sum_to_ring_precision(data: TrustData) -> None:
    training = train_split(data.parties, data.labels, data.train_rows, SMALL, seed=1)
    rows = data.test_rows
    parts = {
        p.name: scatter_rows(n.forward(p.local_row[rows]), np.arange(rows.size), rows.size)
        for p, n in zip(data.parties, training.nodes, strict=True)
    }
    exact = PlainSum().aggregate(0, "x", parts)
    ring = FixedPointSum().aggregate(0, "x", parts)
    masked = MaskedSum(simulation_keys(data.names, 3), b"test-run").aggregate(0, "x", parts)
    bound = len(parts) * 2.0 ** -(FRACTIONAL_BITS + 1)
    assert np.abs(ring - exact).max() <= bound
    np.testing.assert_array_equal(masked, ring)


def test_masking_leaves_the_model_as_good_as_float_sums(data: TrustData) -> None:
    float_run = train_split(
        data.parties, data.labels, data.train_rows, SMALL, aggregator=PlainSum(), seed=1
    )
    masked_sum = MaskedSum(simulation_keys(data.names, 0), b"test-run")
    masked_run = train_split(
        data.parties, data.labels, data.train_rows, SMALL, aggregator=masked_sum, seed=1
    )
    y = data.labels[data.test_rows]
    a = score_split(float_run, data.parties, data.test_rows, aggregator=PlainSum()).logits
    b = score_split(masked_run, data.parties, data.test_rows, aggregator=masked_sum).logits
    assert np.abs(a - b).max() < 1e-3
    assert abs(auc(y, a) - auc(y, b)) < 1e-3


def test_embeddings_stay_bounded_for_wild_features() -> None:
    rng = np.random.default_rng(0)
    node = NodeTrainer("pay", rng.normal(0, 1e6, (50, 4)), SMALL, seed=0)
    e = node.forward(np.arange(50))
    assert e.shape == (50, SMALL.embedding_dim)
    assert np.abs(e).max() <= EMBEDDING_BOUND


def test_sample_sources_never_leaves_a_row_below_k() -> None:
    rng = np.random.default_rng(0)
    avail = rng.random((5000, 4)) < 0.7
    kept = sample_sources(avail, rng, dropout=0.6, keep=2)
    assert not (kept & ~avail).any()  # never a node that lacks the row
    n_avail, n_kept = avail.sum(axis=1), kept.sum(axis=1)
    assert (n_kept >= np.minimum(2, n_avail)).all()
    assert (n_kept < n_avail).any()  # and dropout does drop
    with_three = n_avail >= 3
    assert set(np.unique(n_kept[with_three])) >= {2, 3}


def test_planner_leaves_out_rows_with_fewer_than_k_nodes() -> None:
    avail = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 0]], dtype=bool)
    planner = RoundPlanner(avail, np.arange(5), SMALL, seed=0)
    assert planner.excluded == 2
    np.testing.assert_array_equal(planner.rows, [0, 2, 4])
    for r in range(20):
        plan = planner.plan(r)
        assert (plan.sources.sum(axis=1) >= 2).all()
        assert not (plan.sources & ~avail[plan.rows]).any()
    with pytest.raises(TooFewSources):
        RoundPlanner(avail, np.array([1, 3]), SMALL, seed=0)


def test_scoring_refuses_rows_one_node_would_reveal(data: TrustData) -> None:
    avail = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool)
    plan, scorable = plan_scoring(avail, np.arange(3), round_no=0)
    np.testing.assert_array_equal(scorable, [True, False, False])
    np.testing.assert_array_equal(plan.rows, [0])


def test_top_model_refuses_a_row_with_one_contributor() -> None:
    top = TopTrainer(3, SMALL, seed=0)
    total = np.zeros((2, SMALL.embedding_dim))
    sources = np.array([[True, True, False], [True, False, False]])
    with pytest.raises(TooFewSources):
        top.step(total, np.array([0, 1]), sources, 0)


def test_top_model_refuses_a_sum_its_contributors_cannot_make() -> None:
    top = TopTrainer(3, SMALL, seed=0)
    total = np.full((1, SMALL.embedding_dim), 2.5)  # two tanh embeddings sum to at most 2
    with pytest.raises(InvalidInput, match="exceeds"):
        top.step(total, np.array([1]), np.array([[True, True, False]]), 0)


def test_one_channel_down_at_inference_still_scores(
    data: TrustData, trained: SplitTraining
) -> None:
    y = data.labels[data.test_rows]
    full = score_split(trained, data.parties, data.test_rows)
    assert full.scored.all()
    full_auc = auc(y, full.logits)
    for down in data.names:
        live = [n for n in data.names if n != down]
        partial = score_split(trained, data.parties, data.test_rows, use=live)
        assert partial.scored.all()
        assert auc(y, partial.logits) > 0.65
        assert auc(y, partial.logits) > full_auc - 0.08
    alone = score_split(trained, data.parties, data.test_rows, use=["pay"])
    assert not alone.scored.any()  # one node would be exposed: no score at all
    assert np.isnan(alone.logits).all()


def test_realistic_coverage_rows_below_k_are_excluded_and_unscored() -> None:
    data = prepare_trust_data(split_by_channel(synthesize(1500, seed=5), "realistic"), seed=0)
    avail = availability(data.parties)
    training = train_split(data.parties, data.labels, data.train_rows, SMALL, seed=0)
    below = int((avail[data.train_rows].sum(axis=1) < 2).sum())
    assert below > 0
    assert training.log.excluded_rows == below
    scores = score_split(training, data.parties, data.test_rows)
    np.testing.assert_array_equal(scores.scored, avail[data.test_rows].sum(axis=1) >= 2)
    assert np.isfinite(scores.logits[scores.scored]).all()


def test_exchange_log_counts_rounds_and_bytes(data: TrustData) -> None:
    training = train_split(data.parties, data.labels, data.train_rows, SMALL, seed=1)
    log = training.log
    n, d, nodes = data.train_rows.size, SMALL.embedding_dim, len(data.parties)
    assert log.rounds == SMALL.rounds
    assert log.bytes_up == SMALL.rounds * nodes * n * d * EMBED_BYTES_PER_VALUE
    # Gradients go only to the rows each node contributed: at least k of 3 per row.
    assert 2 * n * d * GRAD_BYTES_PER_VALUE * SMALL.rounds <= log.bytes_down
    assert log.bytes_down < nodes * n * d * GRAD_BYTES_PER_VALUE * SMALL.rounds
    score_split(training, data.parties, data.test_rows)
    assert log.forward_rounds == 1
    assert log.bytes_sent == log.bytes_up + log.bytes_down


def test_node_state_survives_a_process_restart(data: TrustData) -> None:
    party = data.parties[0]
    node = NodeTrainer(party.name, party.features, SMALL, seed=4)
    rows = np.arange(200)
    rng = np.random.default_rng(0)
    node.backward(rows, rng.normal(0, 0.1, (200, SMALL.embedding_dim)), 0)
    saved = node.to_bytes()
    fresh = NodeTrainer(party.name, party.features, SMALL, seed=4)
    fresh.restore(saved)
    grad = rng.normal(0, 0.1, (200, SMALL.embedding_dim))
    node.backward(rows, grad, 1)
    fresh.backward(rows, grad, 1)
    np.testing.assert_array_equal(node.forward(rows), fresh.forward(rows))
    with pytest.raises(InvalidInput, match="model archive"):
        fresh.restore(b"not a model")


def test_backward_refuses_replays_and_malformed_gradients(data: TrustData) -> None:
    party = data.parties[0]
    node = NodeTrainer(party.name, party.features, SMALL, seed=0)
    rows = np.arange(10)
    good = np.zeros((10, SMALL.embedding_dim))
    node.backward(rows, good, 3)
    with pytest.raises(InvalidInput, match="already learnt"):
        node.backward(rows, good, 3)
    with pytest.raises(InvalidInput, match="10 × 8"):
        node.backward(rows, np.zeros((9, SMALL.embedding_dim)), 4)
    with pytest.raises(InvalidInput, match="NaN"):
        node.backward(rows, np.full((10, SMALL.embedding_dim), np.nan), 4)
    with pytest.raises(InvalidInput, match="exceed"):
        node.backward(rows, np.full((10, SMALL.embedding_dim), 1e9), 4)
    with pytest.raises(InvalidInput, match="outside"):
        node.forward(np.array([party.features.shape[0]]))


def test_centralized_model_starts_from_the_same_weights(data: TrustData) -> None:
    joint = JointModel([p.features.shape[1] for p in data.parties], SMALL, seed=7)
    for i, p in enumerate(data.parties):
        node = NodeTrainer(p.name, p.features, SMALL, seed=party_seed(7, i))
        for a, b in zip(
            joint.bottoms[i].state_dict().values(), node.model.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)


def test_config_round_trips_and_refuses_k_below_two() -> None:
    cfg = SplitConfig(rounds=7, bottom_hidden=(32, 16), node_objective="gradient")
    assert SplitConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(InvalidInput, match="min_contributors"):
        SplitConfig(min_contributors=1)
    with pytest.raises(InvalidInput, match="unknown"):
        SplitConfig.from_dict({"rounds": 3, "shell": "rm"})
    with pytest.raises(InvalidInput, match="party_dropout"):
        SplitConfig(party_dropout=1.0)


def test_party_checks_its_row_map() -> None:
    with pytest.raises(InvalidInput, match="outside"):
        Party("pay", np.zeros((2, 3), dtype=np.float32), np.array([0, 5]))


def test_a_node_that_is_down_is_not_in_the_masked_round(
    data: TrustData, trained: SplitTraining
) -> None:
    masked_sum = MaskedSum(simulation_keys(data.names, 0), b"score-run")
    scores = score_split(
        trained, data.parties, data.test_rows, aggregator=masked_sum, use=["pay", "shop"]
    )
    assert scores.scored.all()
    assert masked_sum.matrices_masked == 2  # social neither asked nor masked


def test_redo_plan_after_a_node_drops_mid_round() -> None:
    sources = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0]], dtype=bool)
    plan = RoundPlan(3, np.array([10, 11, 12, 13]), sources)
    assert plan.participants() == [0, 1, 2]
    redo = plan.without([2])
    assert redo.round_no == 3
    np.testing.assert_array_equal(redo.rows, [10, 13])  # 11 and 12 fall below k = 2
    assert not redo.sources[:, 2].any()
    assert redo.participants() == [0, 1]
