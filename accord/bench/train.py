"""`accord bench train`: the federated trust model against the same architecture trained
centrally and against each channel alone, on DESIGN.md's split of the UCI credit data.

Federated: the real Flower ServerApp and ClientApps on Flower's local simulation runtime, one
ClientApp per channel holding only that channel's columns, masked sums through
``accord.crypto.masking``. The nodes' data is held in memory here (the data layer of a node is
exercised by the integration tests); alignment follows the customer references the split made,
standing in for PSI. Centralized and single-channel baselines train the same networks in this
process on the same rows, same run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flwr.app import Context

from accord.bench.trust_experiment import run_trust_experiment
from accord.coordinator.training import TrainingSet
from accord.crypto.keys import KeyAgreementKey
from accord.data.channel_file import ChannelTable
from accord.data.uci import (
    CHANNELS,
    LABEL_CHANNEL,
    Coverage,
    is_test_row,
    load_uci_csv,
    local_ref,
    split_by_channel,
)
from accord.launch.simulation import partition_factory, train_in_simulation
from accord.node.flower_client import ContextStateStore
from accord.node.training import NodeRows, TrainingParticipant
from accord.scoring.metrics import auc, expected_calibration_error
from accord.scoring.split_model import SplitConfig, simulation_keys

VALIDATION = 0.1


def row_key(channel: str, row: int) -> bytes:
    return hashlib.sha256(f"bench:{channel}:{row}".encode()).digest()[:16]


class MemoryData:
    """One channel's table in memory: the aligned rows it holds, no consent checks."""

    def __init__(self, table: ChannelTable, rows: dict[bytes, int]) -> None:
        self.table, self.rows_by_key = table, rows

    def rows(self, training_run: str, alignment_run: str) -> NodeRows:
        keys = list(self.rows_by_key)
        return NodeRows(
            keys, self.table.values[[self.rows_by_key[k] for k in keys]], dict(self.table.columns)
        )

    def withdrawn(
        self, training_run: str, alignment_run: str, row_keys: Sequence[bytes]
    ) -> list[bytes]:
        return []


@dataclass
class Scenario:
    data: TrainingSet
    tables: dict[str, ChannelTable]
    rows: dict[str, dict[bytes, int]]
    keys: dict[str, KeyAgreementKey]


def build_scenario(source: Path, coverage: Coverage, seed: int) -> Scenario:
    split = split_by_channel(load_uci_csv(source), coverage)
    label = split.tables[LABEL_CHANNEL]
    ids = np.array([int(r.removeprefix("CRM-")) for r in label.refs])
    keys: dict[str, list[bytes | None]] = {}
    rows: dict[str, dict[bytes, int]] = {}
    for channel in CHANNELS:
        position = {ref: i for i, ref in enumerate(split.tables[channel].refs)}
        column: list[bytes | None] = []
        rows[channel] = {}
        for n, customer in enumerate(ids):
            local = position.get(local_ref(channel, int(customer)))
            key = None if local is None else row_key(channel, n)
            column.append(key)
            if key is not None:
                rows[channel][key] = local  # type: ignore[assignment]
        keys[channel] = column
    test = np.array([is_test_row(int(i)) for i in ids])
    train_all = np.flatnonzero(~test)
    is_val = np.random.default_rng([seed, 6]).random(train_all.size) < VALIDATION
    data = TrainingSet(
        "bench",
        list(CHANNELS),
        keys,
        label.values[:, 0].astype(np.float64),
        train_all[is_val].astype(np.int64),
        np.flatnonzero(test).astype(np.int64),
    )
    return Scenario(data, dict(split.tables), rows, simulation_keys(list(CHANNELS), seed))


def run_train_bench(
    source: Path, coverage: Coverage, seed: int = 0, config: SplitConfig | None = None
) -> dict[str, object]:
    torch.set_num_threads(1)
    config = config or SplitConfig()
    scenario = build_scenario(source, coverage, seed)
    publics = {n: k.public_key for n, k in scenario.keys.items()}

    def build(channel: str, context: Context) -> TrainingParticipant:
        return TrainingParticipant(
            channel,
            MemoryData(scenario.tables[channel], scenario.rows[channel]),
            ContextStateStore(context),
            scenario.keys[channel],
            publics,
        )

    started = time.perf_counter()
    model = train_in_simulation(
        scenario.data,
        partition_factory(list(CHANNELS), build),
        config,
        seed=seed,
        run_id=f"bench-{seed}",
    )
    seconds = time.perf_counter() - started
    data = scenario.data
    base_rate = float(data.labels[np.setdiff1d(np.arange(data.labels.size), data.held_out)].mean())
    test_positions = np.arange(data.validation.size, model.evaluated_rows.size)
    logits = model.evaluated_logits[test_positions]
    scored = ~np.isnan(logits)
    p = np.full(logits.size, base_rate)
    p[scored] = model.trust_calibrator.probabilities(logits[scored])
    y = data.labels[data.test]

    # the same networks, centrally and per channel, on the same rows (helper library)
    central = _baselines(source, coverage, seed, config)
    return {
        "auc": round(auc(y, p), 4),
        "auc_scored_rows": round(auc(y[scored], p[scored]), 4),
        "scored_fraction": round(float(scored.mean()), 4),
        "centralized_auc": central["centralized_auc"],
        "best_single_channel_auc": central["best_single_channel_auc"],
        "best_single_channel": central["best_single_channel"],
        "ece": round(expected_calibration_error(y[scored], p[scored]), 4),
        "seconds": round(seconds, 2),
        "centralized_seconds": central["centralized_seconds"],
        "rounds": model.report.rounds,
        "bytes_sent": model.report.bytes_up + model.report.bytes_down,
        "coverage": coverage,
        "runtime": "flower-simulation",
        "dropped_nodes": model.report.dropped_nodes,
    }


def _baselines(
    source: Path, coverage: Coverage, seed: int, config: SplitConfig
) -> dict[str, object]:
    """Centralized and single-channel models (same networks, same rows) from the scoring library."""
    report = run_trust_experiment(
        load_uci_csv(source), coverage, seed, config=config, masking=False, threads=1
    )
    return {
        "centralized_auc": round(report.centralized_auc, 4),
        "centralized_seconds": round(report.centralized_seconds, 2),
        "best_single_channel_auc": round(report.best_single_channel_auc, 4),
        "best_single_channel": report.best_single_channel,
    }
