"""A curious coordinator that asks a channel for two own spend sums whose groups differ by one
customer (issue 16, attack 5), against the real processes of the shared LTV network.

After an LTV model is trained, each channel releases one sum of its own spend estimates over
the training customers only it holds. The one-sum rule was keyed on the model id, which the
caller names: a second sum "for another model" over the same group minus one customer gave
that customer's estimate by subtraction. The rule is now one sum per alignment run, whatever
the model id; the same question again gets the same number.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from accord.coordinator.own_spend import lone_training_rows
from accord.coordinator.training import load_training_set
from accord.data.cdnow import HOLDOUT_DAYS
from accord.launcher import LocalNetwork
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import node_pb2, node_pb2_grpc
from accord.rpc.tls import PartyCredentials


def _ask(network: LocalNetwork, node: str, request: node_pb2.OwnSpendSumRequest):  # type: ignore[no-untyped-def]
    creds = PartyCredentials.load(network.pki_dir / COORDINATOR)
    with creds.channel(network.parties[node].endpoint, node) as channel:
        return node_pb2_grpc.NodeServiceStub(channel).OwnSpendSum(request, timeout=120)


def test_a_second_sum_under_another_model_id_minus_one_customer_is_refused(
    ltv_network: tuple[LocalNetwork, Path],
) -> None:
    network, _ = ltv_network
    engine = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with engine.connect() as conn:
        model, run = conn.execute(
            text("SELECT model_id, alignment_run FROM model_version WHERE kind = 'ltv' LIMIT 1")
        ).one()
    data = load_training_set(engine, str(run), seed=0)  # what `accord train` asked for
    engine.dispose()
    rows = lone_training_rows(data)["store"]
    group = [data.keys["store"][r] for r in rows]

    def sum_over(model_id: str, keys: list[bytes | None]) -> node_pb2.OwnSpendSumResponse:
        return _ask(  # type: ignore[no-any-return]
            network,
            "store",
            node_pb2.OwnSpendSumRequest(
                model=model_id,
                alignment_run=str(run),
                row_keys=[k for k in keys if k is not None],
                horizon_days=HOLDOUT_DAYS,
            ),
        )

    # the model's own question, asked again (under a fresh id): the same number, nothing new
    first = sum_over("ltv-curious-1", group)
    again = sum_over("ltv-curious-2", group)
    assert again.estimate_sum == first.estimate_sum and again.customers == first.customers
    # the same group minus one customer, under yet another model id: refused, whichever
    # customer is left out, so no difference gives anyone's estimate
    for left_out in (0, len(group) // 2, len(group) - 1):
        fewer = group[:left_out] + group[left_out + 1 :]
        with pytest.raises(grpc.RpcError) as refused:
            sum_over(f"ltv-curious-minus-{left_out}", fewer)
        assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]
        assert "one group sum for alignment run" in refused.value.details()  # type: ignore[attr-defined]
    assert str(model) not in {"ltv-curious-1", "ltv-curious-2"}
