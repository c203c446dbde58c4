"""The coordinator's Training service: nodes join the Fleet, the operator starts runs."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import grpc

from accord.errors import AccordError, InvalidInput, NotReady
from accord.proto.v1 import training_pb2, training_pb2_grpc
from accord.registry import reject_unknown_fields
from accord.rpc.tls import peer_party

if TYPE_CHECKING:
    from accord.coordinator.deployment import Scalar
    from accord.coordinator.fleet import Fleet

MODELS = ("trust", "ltv")
MAX_ROUNDS = 10_000
RUN_TIMEOUT_S = 3600.0
EXCHANGE_TIMEOUT_S = 120.0


class TrainingServicer(training_pb2_grpc.TrainingServicer):
    def __init__(self, fleet: Fleet | None, feature_nodes: Callable[[], int] = lambda: 1) -> None:
        self._fleet = fleet
        self._feature_nodes = feature_nodes

    def _require_fleet(self) -> Fleet:
        if self._fleet is None:
            raise NotReady(
                "this coordinator runs no SuperLink: start it with "
                "`accord coordinator serve --fleet-listen HOST:PORT`"
            )
        return self._fleet

    def JoinFleet(
        self, request: training_pb2.JoinFleetRequest, context: grpc.ServicerContext
    ) -> training_pb2.JoinFleetResponse:
        reject_unknown_fields(request, "request")
        fleet = self._require_fleet()
        endpoint = fleet.join(peer_party(context), bytes(request.supernode_public_key))
        return training_pb2.JoinFleetResponse(fleet_endpoint=endpoint)

    def Train(
        self, request: training_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> Iterator[training_pb2.TrainUpdate]:
        reject_unknown_fields(request, "request")
        fleet = self._require_fleet()
        run_config = run_config_for(request)
        updates: queue.Queue[training_pb2.TrainUpdate | BaseException] = queue.Queue()

        def progress(snapshot: dict[str, object]) -> None:
            values = snapshot.get("values")
            updates.put(
                training_pb2.TrainUpdate(
                    stage=str(snapshot.get("stage", "")),
                    round=int(str(snapshot.get("round", 0))),
                    rounds=int(str(snapshot.get("rounds", 0))),
                    values={
                        str(k): float(v)
                        for k, v in (values.items() if isinstance(values, dict) else [])
                        if isinstance(v, int | float)
                    },
                )
            )

        def run() -> None:
            try:
                body = fleet.train(
                    run_config,
                    nodes=max(self._feature_nodes(), 1),
                    timeout_s=RUN_TIMEOUT_S,
                    on_progress=progress,
                )
                updates.put(training_pb2.TrainUpdate(stage="done", report_json=json.dumps(body)))
            except BaseException as exc:  # handed to the caller's stream below
                updates.put(exc)

        threading.Thread(target=run, name="train-run", daemon=True).start()
        while True:
            update = updates.get()
            if isinstance(update, AccordError):
                raise update
            if isinstance(update, BaseException):
                raise AccordError(f"training failed: {type(update).__name__}: {update}")
            yield update
            if update.report_json:
                return


def run_config_for(request: training_pb2.TrainRequest) -> dict[str, Scalar]:
    """The run config for Accord's ServerApp (paths come from the ticket, not from here)."""
    if request.model not in MODELS:
        raise InvalidInput(f"model must be one of {', '.join(MODELS)}, not {request.model!r}")
    if request.rounds > MAX_ROUNDS:
        raise InvalidInput(f"rounds must be at most {MAX_ROUNDS}")
    if len(request.alignment_run) > 128 or not all(
        c.isalnum() or c in "-_" for c in request.alignment_run
    ):
        raise InvalidInput("alignment_run is not a run id")
    from accord.scoring.ltv.federated import LTV_SPLIT
    from accord.scoring.split_model import SplitConfig

    config = LTV_SPLIT if request.model == "ltv" else SplitConfig()
    if request.rounds:
        config = replace(config, rounds=request.rounds)
    return {
        "alignment-run": request.alignment_run,
        "seed": int(request.seed % (1 << 62)),
        "rounds": config.rounds,
        "split-config": json.dumps(config.to_dict()),
        "timeout-s": EXCHANGE_TIMEOUT_S,
    }


def add_training(server: grpc.Server, servicer: TrainingServicer) -> str:
    training_pb2_grpc.add_TrainingServicer_to_server(servicer, server)
    return str(training_pb2.DESCRIPTOR.services_by_name["Training"].full_name)
