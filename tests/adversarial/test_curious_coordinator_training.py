"""A curious coordinator that deviates from the training protocol (P2), against real node
stores, real consent gates and the real training participants.

Each test plays one deviation the review found (issue 16, item 1) and checks that it yields a
refusal or noise, never one node's embedding. Before the fix, each of these recovered the
pay node's embedding exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from inprocess import Network, build
from inprocess import training_participant as participant

from accord.coordinator.training import load_training_set
from accord.crypto import masking
from accord.crypto.round_plan import bind_round_plan
from accord.data.uci import split_by_channel, synthesize
from accord.errors import Conflict, InvalidInput
from accord.scoring.split_model import TRAIN_PURPOSE, SplitConfig

TRAIN = ("model-training",)
RUN = "curious-run"
ROWS = 60
BOTH = {"pay": np.arange(ROWS), "shop": np.arange(ROWS)}


@pytest.fixture
def network(tmp_path: Path, pki_dir: Path) -> Iterator[tuple[Network, str]]:
    split = split_by_channel(synthesize(400, seed=5), "full")
    consents = {name: dict.fromkeys(t.refs, TRAIN) for name, t in split.tables.items()}
    net = build(tmp_path, pki_dir, dict(split.tables), consents)
    try:
        yield net, net.orchestrator.run().run_id
    finally:
        net.stop()


class Plain:
    """What each node handed to masking: the embedding a deviation would try to recover."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.matrices: dict[tuple[bytes, str], np.ndarray] = {}
        real = masking.mask_embedding

        def remember(node, key, peers, round_id, matrix, **kwargs):  # type: ignore[no-untyped-def]
            self.matrices[(round_id, node)] = np.array(matrix, dtype=np.float64, copy=True)
            return real(node, key, peers, round_id, matrix, **kwargs)

        monkeypatch.setattr(masking, "mask_embedding", remember)

    def of(self, node: str) -> np.ndarray:
        return next(m for (_, n), m in self.matrices.items() if n == node)


@pytest.fixture
def entered(network: tuple[Network, str]) -> tuple[Network, dict[str, list[bytes]]]:
    """pay and shop have entered a run; the row keys of customers both hold, in one matrix
    order, as the coordinator holds them."""
    net, alignment_run = network
    config = SplitConfig(rounds=2)
    entered = {
        c: set(participant(net, c).start(RUN, alignment_run, config, seed=1))
        for c in ("pay", "shop")
    }
    data = load_training_set(net.ledger.store.engine, alignment_run)
    pay, shop = data.keys["pay"], data.keys["shop"]
    both = [i for i in range(len(pay)) if pay[i] in entered["pay"] and shop[i] in entered["shop"]]
    assert len(both) >= ROWS
    rows = {"pay": [pay[i] for i in both[:ROWS]], "shop": [shop[i] for i in both[:ROWS]]}
    return net, rows  # type: ignore[return-value]


def looks_uniform(words: np.ndarray) -> bool:
    u = np.sort(words.ravel().astype(np.float64) / 2.0**64)
    n = u.size
    ks = max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n))
    return bool(ks < 1.95 / math.sqrt(n))  # KS at p = 0.001


def round_id(n: int) -> bytes:
    return masking.derive_round_id(RUN.encode(), n, 0, ["pay", "shop"])


def test_asking_a_node_the_same_round_twice_is_refused_even_after_a_restart(
    entered: tuple[Network, dict[str, list[bytes]]],
) -> None:
    net, rows = entered
    rid = round_id(1)
    shop = participant(net, "shop")
    shop.embed(RUN, rid, TRAIN_PURPOSE, BOTH, ROWS, rows["shop"])
    # the second time "with no rows": its answer minus the first would be shop's embedding
    empty = {"pay": np.arange(ROWS), "shop": np.arange(0)}
    with pytest.raises(Conflict, match="already answered"):
        shop.embed(RUN, rid, TRAIN_PURPOSE, empty, ROWS, [])
    # and the same plan again, from a new process over the same store
    with pytest.raises(Conflict, match="already answered"):
        participant(net, "shop").embed(RUN, rid, TRAIN_PURPOSE, BOTH, ROWS, rows["shop"])


def test_a_plan_where_the_partner_contributes_nothing_is_refused(
    entered: tuple[Network, dict[str, list[bytes]]],
) -> None:
    net, rows = entered
    alone = {"pay": np.arange(ROWS), "shop": np.arange(0)}
    with pytest.raises(InvalidInput, match="fewer than 2 contributors"):
        participant(net, "pay").embed(RUN, round_id(2), TRAIN_PURPOSE, alone, ROWS, rows["pay"])
    # one row short is enough to refuse: that one row's sum would be pay's alone
    partly = {"pay": np.arange(ROWS), "shop": np.arange(1, ROWS)}
    with pytest.raises(InvalidInput, match="1 of the rows"):
        participant(net, "pay").embed(RUN, round_id(3), TRAIN_PURPOSE, partly, ROWS, rows["pay"])
    # the refusal claimed nothing: the honest plan under that round id still gets an answer
    participant(net, "pay").embed(RUN, round_id(3), TRAIN_PURPOSE, BOTH, ROWS, rows["pay"])


def test_telling_the_two_nodes_different_plans_yields_noise(
    entered: tuple[Network, dict[str, list[bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    net, rows = entered
    plain = Plain(monkeypatch)
    rid = round_id(4)
    # pay is told both contribute every row; shop is told it contributes nothing but is a
    # participant (so its pairwise masks would cancel pay's, leaving pay's embedding)
    to_pay = BOTH
    to_shop = {"pay": np.arange(ROWS), "shop": np.arange(0)}
    from_pay = participant(net, "pay").embed(RUN, rid, TRAIN_PURPOSE, to_pay, ROWS, rows["pay"])
    from_shop = participant(net, "shop").embed(RUN, rid, TRAIN_PURPOSE, to_shop, ROWS, [])
    summed = from_pay.values + from_shop.values  # what the coordinator would decode
    assert looks_uniform(summed)
    decoded = masking.decode_fixed_point(summed)
    assert np.abs(decoded - plain.of("pay")).max() > 1e6
    # had both been told the same plan, the same sum would be exact: the binding is what bites
    assert bind_round_plan(rid, TRAIN_PURPOSE, ROWS, to_pay) != bind_round_plan(
        rid, TRAIN_PURPOSE, ROWS, to_shop
    )


def test_an_honest_round_still_sums_exactly(
    entered: tuple[Network, dict[str, list[bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same code path, followed faithfully, gives the coordinator the sum."""
    net, rows = entered
    plain = Plain(monkeypatch)
    rid = round_id(5)
    answers = [
        participant(net, c).embed(RUN, rid, TRAIN_PURPOSE, BOTH, ROWS, rows[c])
        for c in ("pay", "shop")
    ]
    bound = bind_round_plan(rid, TRAIN_PURPOSE, ROWS, BOTH)
    total = masking.aggregate(answers, ["pay", "shop"], expected_round_id=bound)
    np.testing.assert_allclose(total, plain.of("pay") + plain.of("shop"), atol=2 * 2.0**-20)
