"""Run a training on Flower's local simulation runtime (one machine: the demo, the bench).

The ServerApp runs in this process; each feature node's ClientApp runs in a simulation worker
and reaches that node's data only through the participant the factory builds for it (for the
demo: the node's own store, through its consent gate). Across organisations the same apps run
on the Deployment Engine (a SuperLink at the coordinator, a SuperNode per node).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from flwr.app import Context
from flwr.simulation import run_simulation

from accord.coordinator.flower_server import make_server_app
from accord.coordinator.training import TrainedModel, TrainingSet
from accord.errors import AccordError
from accord.node.flower_client import make_client_app
from accord.node.training import TrainingParticipant
from accord.scoring.split_model import SplitConfig

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


def partition_factory(
    channels: Sequence[str], build: Callable[[str, Context], TrainingParticipant]
) -> Callable[[Context], TrainingParticipant]:
    """Simulation node ``partition-id`` i serves ``channels[i]``."""
    names = list(channels)

    def factory(context: Context) -> TrainingParticipant:
        channel = names[int(context.node_config["partition-id"])]
        return build(channel, context)

    return factory


def train_in_simulation(
    data: TrainingSet,
    participant: Callable[[Context], TrainingParticipant],
    config: SplitConfig,
    *,
    seed: int,
    run_id: str,
    progress: Callable[[str, int, int, dict[str, float]], None] = lambda *a: None,
) -> TrainedModel:
    done: list[TrainedModel] = []
    # run_simulation is marked deprecated in favour of `flwr run`; it is still the only way to
    # run a ServerApp in this process with apps built from Python objects. Keep its notice quiet.
    logging.getLogger("flwr").setLevel(logging.ERROR)
    server = make_server_app(
        data, config, seed=seed, run_id=run_id, on_done=done.append, progress=progress
    )
    client = make_client_app(participant)
    run_simulation(
        server,
        client,
        num_supernodes=len(data.nodes),
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"logging_level": 40, "log_to_driver": False},
        },
    )
    if not done:
        raise AccordError("the Flower run ended without a model; see the log above")
    return done[0]
