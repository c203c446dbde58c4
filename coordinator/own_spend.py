"""After an LTV model is trained: each channel's factor for its own spend estimates.

The federated model answers only over masked sums of at least two channels (P2), so for a
customer one channel alone holds, that channel answers with its own spend model (BG/NBD and
Gamma-Gamma on its own purchases, :mod:`accord.node.own_spend`). Fitted on one channel's
population, such an estimate runs low; the coordinator scales it with one factor per channel:
the labels it already holds for that channel's below-k training customers, summed, over the
one sum of the channel's estimates for the same customers. The channel releases that sum once
per model, over at least ``MIN_SCALE_CUSTOMERS`` customers, never a per-customer value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import grpc
import numpy as np
from sqlalchemy import Engine, text

from accord.coordinator.training import TrainedModel, TrainingSet
from accord.proto.v1 import node_pb2, node_pb2_grpc
from accord.rpc.client import describe_rpc_error
from accord.rpc.tls import PartyCredentials

SUM_DEADLINE_S = 120.0  # the channel fits its own model first: seconds on ~10k customers


@dataclass
class OwnChannelScales:
    """Per channel: the factor, how many customers its group sum covered, and why a channel
    has none (too few customers only it holds, unreachable, refused)."""

    scales: dict[str, float] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        parts = [
            f"{c} × {s:.3f} ({self.customers[c]} customers)" for c, s in sorted(self.scales.items())
        ]
        parts += [f"{c}: none ({why})" for c, why in sorted(self.skipped.items())]
        return "; ".join(parts)


def lone_training_rows(data: TrainingSet) -> dict[str, np.ndarray]:
    """Per feature node, the training rows (never the held-out ones) only it holds."""
    held = np.array([[k is not None for k in data.keys[n]] for n in data.nodes]).T
    if held.size == 0:
        return {n: np.zeros(0, dtype=np.int64) for n in data.nodes}
    training = np.ones(data.labels.size, dtype=bool)
    training[data.held_out] = False
    lone = training & (held.sum(axis=1) == 1)
    return {n: np.flatnonzero(lone & held[:, j]) for j, n in enumerate(data.nodes)}


def node_endpoints(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT channel, endpoint FROM registered_node")).all()
    return {str(c): str(e) for c, e in rows}


Ask = Callable[[str, node_pb2.OwnSpendSumRequest], node_pb2.OwnSpendSumResponse]


def grpc_asker(credentials: PartyCredentials, endpoints: Mapping[str, str]) -> Ask:
    """Ask a node over mutual TLS, as the coordinator."""

    def ask(node: str, request: node_pb2.OwnSpendSumRequest) -> node_pb2.OwnSpendSumResponse:
        if node not in endpoints:
            raise LookupError(f"{node} is not registered")
        with credentials.channel(endpoints[node], node) as channel:
            reply: node_pb2.OwnSpendSumResponse = node_pb2_grpc.NodeServiceStub(
                channel
            ).OwnSpendSum(request, timeout=SUM_DEADLINE_S)
            return reply

    return ask


def own_channel_scales(
    data: TrainingSet, model_id: str, ask: Ask, *, horizon_days: int
) -> OwnChannelScales:
    """Ask each channel for its one group sum over the training customers only it holds, and
    turn each answer into that channel's factor. A channel that cannot answer is skipped (its
    lone customers stay unscored, as before); the reason is kept for the run report."""
    from accord.scoring.ltv.fallback import MIN_SCALE_CUSTOMERS

    out = OwnChannelScales()
    for node, rows in lone_training_rows(data).items():
        if rows.size < MIN_SCALE_CUSTOMERS:
            out.skipped[node] = (
                f"{rows.size} training customers only it holds; a group sum needs "
                f"{MIN_SCALE_CUSTOMERS}"
            )
            continue
        keys = [data.keys[node][r] for r in rows]
        request = node_pb2.OwnSpendSumRequest(
            model=model_id,
            alignment_run=data.alignment_run,
            row_keys=[k for k in keys if k is not None],
            horizon_days=horizon_days,
        )
        try:
            reply = ask(node, request)
        except grpc.RpcError as err:
            out.skipped[node] = describe_rpc_error(err, node)
            continue
        except LookupError as err:
            out.skipped[node] = str(err)
            continue
        left_out = set(reply.left_out)
        summed = [r for r, k in zip(rows, keys, strict=True) if k not in left_out]
        if (
            len(summed) != reply.customers
            or not np.isfinite(reply.estimate_sum)
            or reply.estimate_sum <= 0
        ):
            out.skipped[node] = "its group sum did not match the customers it named"
            continue
        out.scales[node] = float(data.labels[summed].sum()) / float(reply.estimate_sum)
        out.customers[node] = len(summed)
    return out


def scales_for_model(
    engine: Engine, credentials: PartyCredentials, data: TrainingSet, model: TrainedModel
) -> OwnChannelScales:
    """The factors of a freshly trained model (none for a trust model: it does not answer
    below k at all); what was skipped goes into the run report's events."""
    if model.kind != "ltv":
        return OwnChannelScales()
    from accord.data.cdnow import HOLDOUT_DAYS

    asked = own_channel_scales(
        data,
        model.model_id,
        grpc_asker(credentials, node_endpoints(engine)),
        horizon_days=HOLDOUT_DAYS,  # the scale absorbs a label horizon that differs
    )
    model.report.events.append(f"own-channel estimates below k: {asked.summary() or 'none'}")
    return asked


__all__ = [
    "OwnChannelScales",
    "grpc_asker",
    "lone_training_rows",
    "node_endpoints",
    "own_channel_scales",
    "scales_for_model",
]
