"""The coordinator's Flower ServerApp: :class:`TrainingRun` over Flower messages.

:class:`FlowerLink` is the :class:`~accord.coordinator.training.NodeLink` that carries each
exchange as one ``send_and_receive`` to the round's nodes. A node that replies with an error
or not at all within the timeout is reported as failed; the run then redoes the round with the
live nodes (P8).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from accord.coordinator.training import (
    EmbedCall,
    NodeFailed,
    NodeLink,
    Outcome,
    TrainedModel,
    TrainingRun,
    TrainingSet,
    Withdrawal,
)
from accord.crypto import masking
from accord.errors import NotReady
from accord.protocol import PLAN_ARRAY
from accord.rowkeys import split_keys
from accord.scoring.split_model import SplitConfig

NODE_WAIT_S = 60.0


class FlowerLink(NodeLink):
    def __init__(self, grid: Grid, expected: Sequence[str], timeout_s: float = 300.0) -> None:
        self.grid = grid
        self.timeout = timeout_s
        self.node_ids = self._discover(expected)

    def _discover(self, expected: Sequence[str]) -> dict[str, int]:
        """Which Flower node serves which channel (each ClientApp says so)."""
        give_up = time.monotonic() + NODE_WAIT_S
        found: dict[str, int] = {}
        while True:
            ids = list(self.grid.get_node_ids())
            if len(ids) >= len(expected):
                replies = self._send({i: ("query.hello", {}, None) for i in ids})
                for node_id, reply in replies.items():
                    if isinstance(reply, Message) and not reply.has_error():
                        found[str(_config(reply)["channel"])] = node_id
                if set(expected) <= set(found):
                    return {c: found[c] for c in expected}
            if time.monotonic() > give_up:
                missing = sorted(set(expected) - set(found))
                raise NotReady(f"feature nodes did not join the Flower run: {', '.join(missing)}")
            time.sleep(0.2)

    def _send(
        self,
        calls: Mapping[
            int, tuple[str, dict[str, object], dict[str, npt.NDArray[np.generic]] | None]
        ],
    ) -> dict[int, Message | NodeFailed]:
        messages = []
        for node_id, (kind, config, arrays) in calls.items():
            content = RecordDict({"config": ConfigRecord(config)})  # type: ignore[arg-type]
            if arrays is not None:
                content["arrays"] = ArrayRecord(
                    {k: Array(np.ascontiguousarray(v)) for k, v in arrays.items()}
                )
            messages.append(Message(content, dst_node_id=node_id, message_type=kind))
        replies = {
            r.metadata.src_node_id: r
            for r in self.grid.send_and_receive(messages, timeout=self.timeout)
        }
        out: dict[int, Message | NodeFailed] = {}
        for node_id in calls:
            reply = replies.get(node_id)
            if reply is None:
                out[node_id] = NodeFailed("no reply within the timeout")
            elif reply.has_error():
                out[node_id] = NodeFailed(f"error: {reply.error.reason}")
            else:
                out[node_id] = reply
        return out

    def _by_channel(
        self,
        calls: Mapping[
            str, tuple[str, dict[str, object], dict[str, npt.NDArray[np.generic]] | None]
        ],
    ) -> dict[str, Message | NodeFailed]:
        replies = self._send({self.node_ids[c]: call for c, call in calls.items()})
        return {c: replies[self.node_ids[c]] for c in calls}

    def start(
        self,
        nodes: Sequence[str],
        run: str,
        alignment_run: str,
        config: SplitConfig,
        seeds: Mapping[str, int],
    ) -> dict[str, list[bytes] | NodeFailed]:
        payload = {
            "run": run,
            "alignment_run": alignment_run,
            "split_config": json.dumps(config.to_dict()),
        }
        replies = self._by_channel(
            {n: ("train.start", {**payload, "seed": seeds[n]}, None) for n in nodes}
        )
        return {
            n: r if isinstance(r, NodeFailed) else split_keys(bytes(_config(r)["row_keys"]))  # type: ignore[arg-type]
            for n, r in replies.items()
        }

    def embed(self, run: str, calls: Mapping[str, EmbedCall]) -> dict[str, Outcome]:
        replies = self._by_channel(
            {
                n: (
                    "query.embed",
                    {
                        "run": run,
                        "round_id": c.round_id,
                        "purpose": c.purpose,
                        "n_rows": c.n_rows,
                        "row_keys": b"".join(c.row_keys),
                    },
                    {f"{PLAN_ARRAY}{name}": pos for name, pos in c.plan.items()},
                )
                for n, c in calls.items()
            }
        )
        # one plan per round, so one bound id for every node's matrix
        bound = next(iter(calls.values())).mask_round_id if calls else b""
        out: dict[str, Outcome] = {}
        for n, reply in replies.items():
            if isinstance(reply, NodeFailed):
                out[n] = reply
                continue
            config = _config(reply)
            if "withdrawn" in config:
                out[n] = Withdrawal(split_keys(bytes(config["withdrawn"])))  # type: ignore[arg-type]
                continue
            arrays = reply.content["arrays"]
            assert isinstance(arrays, ArrayRecord)
            out[n] = masking.MaskedEmbedding(bound, n, arrays["masked"].numpy().astype(np.uint64))
        return out

    def backprop(
        self,
        run: str,
        round_no: int,
        calls: Mapping[str, tuple[list[bytes], npt.NDArray[np.float32]]],
    ) -> dict[str, float | NodeFailed]:
        replies = self._by_channel(
            {
                n: (
                    "train.backprop",
                    {"run": run, "round": round_no, "row_keys": b"".join(k)},
                    {"grad": g},
                )
                for n, (k, g) in calls.items()
            }
        )
        return {
            n: r if isinstance(r, NodeFailed) else float(_config(r)["delta"])  # type: ignore[arg-type]
            for n, r in replies.items()
        }

    def finish(self, nodes: Sequence[str], run: str, model_id: str) -> dict[str, bool | NodeFailed]:
        replies = self._by_channel(
            {n: ("train.finish", {"run": run, "model_id": model_id}, None) for n in nodes}
        )
        return {n: r if isinstance(r, NodeFailed) else True for n, r in replies.items()}


def _config(msg: Message) -> ConfigRecord:
    if "config" in msg.content:
        record = msg.content["config"]
        assert isinstance(record, ConfigRecord)
        return record
    return ConfigRecord({})


def make_server_app(
    data: TrainingSet,
    config: SplitConfig,
    *,
    seed: int,
    run_id: str,
    on_done: Callable[[TrainedModel], None],
    progress: Callable[[str, int, int, dict[str, float]], None] = lambda *a: None,
    timeout_s: float = 300.0,
) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        link = FlowerLink(grid, data.nodes, timeout_s)
        on_done(TrainingRun(link, data, config, seed=seed, run_id=run_id, progress=progress).run())

    return app
