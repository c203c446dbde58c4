"""Training over real node stores and the real coordinator libraries, in one process.

P2: what the coordinator receives from one node is uniform on the ring; only sums decode.
P8: a node failing mid-run is dropped and the run still yields a usable model.
P3: every batch passes each node's gate; a revocation mid-run takes the customer out.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from inprocess import DirectLink, Network, build, training_participant

from accord.coordinator.training import TrainingRun, load_training_set
from accord.crypto import masking
from accord.data.uci import CHANNELS, split_by_channel, synthesize
from accord.node.training import TrainingParticipant
from accord.scoring.split_model import SCORE_PURPOSE, SplitConfig

TRAIN = ("model-training",)


@pytest.fixture
def network(tmp_path: Path, pki_dir: Path) -> Iterator[tuple[Network, str]]:
    split = split_by_channel(synthesize(900, seed=3), "realistic")
    consents = {name: dict.fromkeys(t.refs, TRAIN) for name, t in split.tables.items()}
    net = build(tmp_path, pki_dir, dict(split.tables), consents)
    try:
        result = net.orchestrator.run()
        yield net, result.run_id
    finally:
        net.stop()


def participants(net: Network) -> dict[str, TrainingParticipant]:
    return {channel: training_participant(net, channel) for channel in CHANNELS}


def test_the_coordinator_sees_uniform_words_and_exact_sums(
    network: tuple[Network, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    net, run = network
    data = load_training_set(net.ledger.store.engine, run)
    people = participants(net)
    link = DirectLink(people)
    plain: dict[tuple[bytes, str], np.ndarray] = {}
    real_mask = masking.mask_embedding

    def mask_and_remember(node, key, peers, round_id, matrix, **kwargs):  # type: ignore[no-untyped-def]
        # the matrix each node hands to masking is exactly what it would have sent in the
        # clear (recomputing it from the bottom model instead differs in the last float32
        # bits when torch splits the matmul across threads differently)
        plain[(round_id, node)] = np.array(matrix, copy=True)
        return real_mask(node, key, peers, round_id, matrix, **kwargs)

    monkeypatch.setattr(masking, "mask_embedding", mask_and_remember)
    model = TrainingRun(link, data, SplitConfig(rounds=3), seed=1).run()
    assert model.report.rounds == 3
    by_round: dict[bytes, list[masking.MaskedEmbedding]] = {}
    for call, masked in link.received:
        by_round.setdefault(call.mask_round_id, []).append(masked)  # type: ignore[attr-defined]
    for round_id, parts in by_round.items():
        total = masking.aggregate(parts, [p.node for p in parts], expected_round_id=round_id)
        expected = sum(plain[(round_id, p.node)].astype(np.float64) for p in parts)
        np.testing.assert_allclose(total, expected, atol=len(parts) * 2.0**-20)
    # one node's words, as the coordinator received them: uniform on 2^64
    words = np.concatenate([m.values.ravel() for _, m in link.received if m.node == "pay"])  # type: ignore[attr-defined]
    assert words.size > 30_000
    u = np.sort(words.astype(np.float64) / 2.0**64)
    n = u.size
    ks = max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n))
    assert ks < 1.63 / math.sqrt(n)  # the 1 % critical value of the KS statistic
    top_byte = (words >> np.uint64(56)).astype(np.int64)
    counts = np.bincount(top_byte, minlength=256)
    expected_count = n / 256
    chi2 = float(((counts - expected_count) ** 2 / expected_count).sum())
    assert chi2 < 330.5  # chi-square, 255 degrees of freedom, p = 0.001
    # and an unmasked embedding is nothing like it
    raw = masking.encode_fixed_point(next(iter(plain.values()))).ravel()
    raw_top = np.bincount((raw >> np.uint64(56)).astype(np.int64), minlength=256)
    assert float(((raw_top - raw.size / 256) ** 2 / (raw.size / 256)).sum()) > 10_000


def test_a_node_that_fails_mid_run_is_dropped_and_the_model_still_scores(
    network: tuple[Network, str],
) -> None:
    net, run = network
    data = load_training_set(net.ledger.store.engine, run)
    people = participants(net)
    calls = {"n": 0}
    real_embed = people["social"].embed

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] >= 3:
            raise ConnectionError("social went down")
        return real_embed(*args, **kwargs)

    people["social"].embed = flaky  # type: ignore[method-assign]
    model = TrainingRun(DirectLink(people), data, SplitConfig(rounds=4), seed=2).run()
    assert model.report.dropped_nodes == ["social"]
    assert model.report.rounds == 4 and model.report.redone_rounds >= 1
    assert any("social dropped" in e for e in model.report.events)
    scored = ~np.isnan(model.evaluated_logits)
    assert scored.mean() > 0.5 and 0.5 <= model.metrics["auc"] <= 1.0
    assert SCORE_PURPOSE == "split-score"


def test_every_batch_passes_the_gate_and_a_revocation_mid_run_takes_the_customer_out(
    network: tuple[Network, str],
) -> None:
    net, run = network
    data = load_training_set(net.ledger.store.engine, run)
    people = participants(net)
    shop = net.nodes["shop"]
    engine = shop.node.engine
    from sqlalchemy import text

    rounds = {"n": 0}
    victims: list[bytes] = []
    asked_after: list[bytes] = []
    real_embed = people["shop"].embed

    def revoke_after_first(run, round_id, purpose, plan, n_rows, row_keys):  # type: ignore[no-untyped-def]
        rounds["n"] += 1
        if rounds["n"] == 2:
            # a customer shop is asked for in this very call: which rows a round holds (held-out
            # rows, rows with too few sources, party dropout) depends on the seeded plan, so the
            # victim must come from the call, not from the aligned table
            victims.append(row_keys[0])
            with engine.connect() as conn:
                ref = conn.execute(
                    text("SELECT local_ref FROM alignment_row WHERE row_key = :k"),
                    {"k": row_keys[0]},
                ).scalar()
            shop.book.revoke(shop.book.active_record_ids(str(ref)))
        elif victims:
            asked_after.extend(row_keys)
        return real_embed(run, round_id, purpose, plan, n_rows, row_keys)

    people["shop"].embed = revoke_after_first  # type: ignore[method-assign]
    training = TrainingRun(DirectLink(people), data, SplitConfig(rounds=3), seed=3)
    model = training.run()
    assert victims and model.report.withdrawn_rows >= 1 and model.report.redone_rounds >= 1
    # once withdrawn, the customer is never asked for again in this run
    assert asked_after and victims[0] not in asked_after
    with engine.connect() as conn:
        sessions = {
            r[0]
            for r in conn.execute(
                text("SELECT DISTINCT session FROM data_use WHERE purpose = 'model-training'")
            )
        }
    assert model.report.run_id in sessions
