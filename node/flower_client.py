"""The node's Flower ClientApp: each message is one step of :class:`TrainingParticipant`.

Message types: ``query.hello`` (which channel am I), ``train.start``, ``query.embed``,
``train.backprop``, ``train.finish``. Arrays travel in ArrayRecords, the rest in ConfigRecords.
Which node's data a ClientApp serves comes from ``context.node_config`` (``channel``, and
whatever the participant factory needs: a SuperNode's ``--node-config``, or the simulation's
``partition-id``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from accord.errors import Conflict
from accord.node.training import TrainingParticipant, Withdrawn
from accord.protocol import PLAN_ARRAY
from accord.rowkeys import split_keys
from accord.scoring.split_model import SplitConfig

ParticipantFactory = Callable[[Context], TrainingParticipant]


def _config(msg: Message) -> ConfigRecord:
    record = msg.content["config"]
    assert isinstance(record, ConfigRecord)
    return record


def _reply(msg: Message, **records: ConfigRecord | ArrayRecord) -> Message:
    return Message(RecordDict(dict(records)), reply_to=msg)


def make_client_app(participant: ParticipantFactory) -> ClientApp:
    app = ClientApp()

    @app.query("hello")
    def hello(msg: Message, context: Context) -> Message:
        return _reply(msg, config=ConfigRecord({"channel": participant(context).channel}))

    @app.train("start")
    def start(msg: Message, context: Context) -> Message:
        cfg = _config(msg)
        keys = participant(context).start(
            str(cfg["run"]),
            str(cfg["alignment_run"]),
            SplitConfig.from_dict(json.loads(str(cfg["split_config"]))),
            int(cfg["seed"]),  # type: ignore[arg-type]
        )
        return _reply(msg, config=ConfigRecord({"row_keys": b"".join(keys)}))

    @app.query("embed")
    def embed(msg: Message, context: Context) -> Message:
        cfg = _config(msg)
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        try:
            plan = {
                name.removeprefix(PLAN_ARRAY): arrays[name].numpy()
                for name in arrays
                if name.startswith(PLAN_ARRAY)
            }
            masked = participant(context).embed(
                str(cfg["run"]),
                bytes(cfg["round_id"]),  # type: ignore[arg-type]
                str(cfg["purpose"]),
                plan,
                int(cfg["n_rows"]),  # type: ignore[arg-type]
                split_keys(bytes(cfg["row_keys"])),  # type: ignore[arg-type]
            )
        except Withdrawn as exc:
            return _reply(msg, config=ConfigRecord({"withdrawn": b"".join(exc.row_keys)}))
        return _reply(msg, arrays=ArrayRecord({"masked": Array(np.asarray(masked.values))}))

    @app.train("backprop")
    def backprop(msg: Message, context: Context) -> Message:
        cfg = _config(msg)
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        delta = participant(context).backprop(
            str(cfg["run"]),
            int(cfg["round"]),  # type: ignore[arg-type]
            split_keys(bytes(cfg["row_keys"])),  # type: ignore[arg-type]
            arrays["grad"].numpy(),
        )
        return _reply(msg, config=ConfigRecord({"delta": float(delta)}))

    @app.train("finish")
    def finish(msg: Message, context: Context) -> Message:
        cfg = _config(msg)
        participant(context).finish(str(cfg["run"]), str(cfg["model_id"]))
        return _reply(msg, config=ConfigRecord({"kept": True}))

    return app


class ContextStateStore:
    """Training state in Flower's ``context.state``, which Flower keeps per node across messages
    (whichever worker process handles them). For nodes without a store of their own."""

    def __init__(self, context: Context) -> None:
        self.state = context.state

    def save(self, training_run: str, state: bytes) -> None:
        self.state[f"accord.train.{training_run}"] = ConfigRecord({"state": state})

    def load(self, training_run: str) -> bytes | None:
        key = f"accord.train.{training_run}"
        if key not in self.state:
            return None
        record = self.state[key]
        assert isinstance(record, ConfigRecord)
        return bytes(record["state"])  # type: ignore[arg-type]

    def keep_model(self, model_id: str, training_run: str, state: bytes) -> None:
        self.state[f"accord.model.{model_id}"] = ConfigRecord({"state": state, "run": training_run})

    def claim_round(self, training_run: str, round_id: bytes) -> None:
        key = f"accord.rounds.{training_run}"
        answered = b""
        if key in self.state:
            record = self.state[key]
            assert isinstance(record, ConfigRecord)
            answered = bytes(record["ids"])  # type: ignore[arg-type]
        ids = {answered[i : i + len(round_id)] for i in range(0, len(answered), len(round_id))}
        if round_id in ids:
            raise Conflict("this node already answered that training round")
        self.state[key] = ConfigRecord({"ids": answered + round_id})
