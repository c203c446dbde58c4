"""The trust scenario end to end in one process: what ``accord bench train`` reports.

:func:`prepare_trust_data` turns a :class:`~accord.data.uci.ScenarioSplit` into what the parties
would hold after alignment: each feature node's preprocessed rows (fitted on that node's own
table only) and, per aligned customer, which row of it is theirs; the label node's outcomes; the
fixed test rows (``ID % 5 == 0``) and a seeded validation slice of the training rows for
calibration. Alignment here stands in for PSI: it matches the label node's customers to each
channel's references through :func:`~accord.data.uci.local_ref`, which only works on data made
by :func:`~accord.data.uci.split_by_channel`.

:func:`run_trust_experiment` then trains the federated split model through the masked exchange
(:func:`~accord.scoring.split_model.train_split` with
:class:`~accord.scoring.split_model.MaskedSum`), the same architecture centrally on the joined
data, and each channel alone; calibrates on the validation slice; and reports test metrics and
costs. Test customers that fewer than ``k`` nodes hold get no federated score (P2): the report
counts them (``scored_fraction``) and the AUC gives them the training default rate, the only
honest answer without a score.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from accord.data.uci import (
    CHANNELS,
    LABEL_CHANNEL,
    Coverage,
    ScenarioSplit,
    is_test_row,
    local_ref,
    split_by_channel,
)
from accord.errors import InvalidInput
from accord.scoring.calibration import Calibrator, Method, fit_calibrator, sigmoid
from accord.scoring.metrics import (
    CalibrationCurve,
    auc,
    calibration_curve,
    expected_calibration_error,
    plot_calibration,
)
from accord.scoring.preprocess import Preprocessor, fit_preprocessor
from accord.scoring.split_model import (
    Aggregator,
    FixedPointSum,
    MaskedSum,
    Party,
    SplitConfig,
    score_split,
    simulation_keys,
    train_centralized,
    train_single_channel,
    train_split,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

VALIDATION_FRACTION = 0.1


@dataclass(frozen=True)
class TrustData:
    """The aligned scenario as the parties hold it (features never leave their party)."""

    ids: IntArray
    """Customer ID of each aligned row (the label node's customers)."""
    labels: FloatArray
    parties: list[Party]
    preprocessors: dict[str, Preprocessor]
    train_rows: IntArray
    validation_rows: IntArray
    test_rows: IntArray

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parties]


def _label_ids(refs: list[str]) -> IntArray:
    try:
        return np.array([int(r.removeprefix("CRM-")) for r in refs], dtype=np.int64)
    except ValueError as exc:
        raise InvalidInput("the label table's references are not CRM-<ID>") from exc


def prepare_trust_data(
    split: ScenarioSplit,
    *,
    seed: int = 0,
    validation_fraction: float = VALIDATION_FRACTION,
    channels: tuple[str, ...] = CHANNELS,
) -> TrustData:
    """Align, preprocess, and cut train / validation / test.

    Each node fits its preprocessing on its whole own table (unlabelled: its customers the brand
    does not know included), never on another party's rows.
    """
    if LABEL_CHANNEL not in split.tables:
        raise InvalidInput("the split has no label table")
    if not 0.0 < validation_fraction < 0.5:
        raise InvalidInput("validation_fraction must lie in (0, 0.5)")
    label_table = split.tables[LABEL_CHANNEL]
    ids = _label_ids(label_table.refs)
    labels = label_table.values[:, 0].astype(np.float64)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise InvalidInput("labels must be 0 or 1 for every aligned customer")
    parties, preprocessors = [], {}
    for channel in channels:
        table = split.tables.get(channel)
        if table is None:
            raise InvalidInput(f"the split has no {channel!r} table")
        pre = fit_preprocessor(table.columns, table.values)
        position = {ref: i for i, ref in enumerate(table.refs)}
        local = np.array(
            [position.get(local_ref(channel, int(i)), -1) for i in ids], dtype=np.int64
        )
        parties.append(Party(channel, pre.transform(table.values), local))
        preprocessors[channel] = pre
    test = np.array([is_test_row(int(i)) for i in ids])
    train_all = np.flatnonzero(~test).astype(np.int64)
    rng = np.random.default_rng([seed, 6])
    is_val = rng.random(train_all.size) < validation_fraction
    return TrustData(
        ids=ids,
        labels=labels,
        parties=parties,
        preprocessors=preprocessors,
        train_rows=train_all[~is_val],
        validation_rows=train_all[is_val],
        test_rows=np.flatnonzero(test).astype(np.int64),
    )


@dataclass(frozen=True)
class TrustReport:
    """The ``accord bench train`` result; :meth:`to_dict` is the JSON line.

    ``seconds`` is the federated run's wall time (every training exchange with masking, plus the
    one scoring exchange over validation and test rows); ``centralized_seconds`` the same for
    the joint model. ``rounds`` counts training exchanges (embed + gradient), ``forward_rounds``
    embed-only ones. ``bytes_sent`` estimates the wire: masked ``uint64`` embeddings up, and
    ``float32`` gradients down to each node at its own rows (row-key lists not counted). AUC
    and ECE are over all test rows, giving customers held by fewer than ``k`` nodes the training
    default rate; ``*_scored_rows`` restrict both models to the rows the federation can score.
    """

    auc: float
    centralized_auc: float
    best_single_channel_auc: float
    best_single_channel: str
    ece: float
    seconds: float
    centralized_seconds: float
    rounds: int
    bytes_sent: int
    single_channel_auc: dict[str, float]
    auc_scored_rows: float
    centralized_auc_scored_rows: float
    ece_uncalibrated: float
    centralized_ece: float
    forward_rounds: int
    bytes_up: int
    bytes_down: int
    scored_fraction: float
    excluded_training_rows: int
    n_train: int
    n_validation: int
    n_test: int
    coverage: str
    seed: int
    masking: bool
    calibrator: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _calibrated(
    val_logits: FloatArray, val_labels: FloatArray, test_logits: FloatArray, method: Method
) -> tuple[Calibrator, FloatArray]:
    cal = fit_calibrator(val_logits, val_labels, method)
    return cal, cal.probabilities(test_logits)


def run_trust_experiment(
    data: pd.DataFrame | ScenarioSplit | TrustData,
    coverage: Coverage = "full",
    seed: int = 0,
    *,
    config: SplitConfig | None = None,
    masking: bool = True,
    calibration: Method = "temperature",
    single_channels: bool = True,
    plot_path: Path | None = None,
    threads: int | None = 1,
) -> TrustReport:
    """Federated vs centralized vs single-channel trust models on one split, one seed.

    ``data`` is a UCI-shaped frame (split here with ``coverage``), a ready split, or prepared
    :class:`TrustData` (``coverage`` is then only a label). ``threads`` sets torch's intra-op
    threads for the run and restores them afterwards (``None`` leaves them alone). One is the
    default: these models are so small that a second thread only adds hand-offs, and on a
    busy 2-core machine torch's default of two threads made a run about 20× slower.
    """
    cfg = config if config is not None else SplitConfig()
    if isinstance(data, pd.DataFrame):
        data = split_by_channel(data, coverage)
    prepared = data if isinstance(data, TrustData) else prepare_trust_data(data, seed=seed)
    parties, y = prepared.parties, prepared.labels
    val, test = prepared.validation_rows, prepared.test_rows
    with _torch_threads(threads):
        started = time.perf_counter()
        aggregator: Aggregator = (
            MaskedSum(simulation_keys(prepared.names, seed), f"bench-{seed}".encode())
            if masking
            else FixedPointSum()
        )
        fed = train_split(parties, y, prepared.train_rows, cfg, aggregator=aggregator, seed=seed)
        both = np.concatenate([val, test])
        scores = score_split(fed, parties, both, aggregator=aggregator)
        seconds = time.perf_counter() - started

        v_scored = scores.scored[: val.size]
        val_logits = scores.logits[: val.size][v_scored]
        test_logits = scores.logits[val.size :]
        t_scored = scores.scored[val.size :]
        cal, p_scored = _calibrated(
            val_logits, y[val][v_scored], test_logits[t_scored], calibration
        )
        prior = float(y[prepared.train_rows].mean())
        p_test = np.full(test.size, prior)
        p_test[t_scored] = p_scored
        p_raw = np.full(test.size, prior)
        p_raw[t_scored] = sigmoid(test_logits[t_scored])

        started = time.perf_counter()
        central = train_centralized(parties, y, prepared.train_rows, cfg, seed=seed)
        c_val = central.logits(parties, val)
        c_test = central.logits(parties, test)
        centralized_seconds = time.perf_counter() - started
        _, c_p = _calibrated(c_val, y[val], c_test, calibration)

        singles: dict[str, float] = {}
        if single_channels:
            for party in parties:
                alone = train_single_channel(party, y, prepared.train_rows, cfg, seed=seed)
                singles[party.name] = auc(y[test], alone.logits([party], test))

    y_test = y[test]
    if plot_path is not None:
        curves: dict[str, CalibrationCurve] = {
            "federated, raw": calibration_curve(y_test, p_raw),
            f"federated, {calibration}": calibration_curve(y_test, p_test),
            f"centralized, {calibration}": calibration_curve(y_test, c_p),
        }
        plot_calibration(curves, plot_path, title=f"Trust, UCI credit ({coverage} coverage)")
    best = max(singles, key=lambda k: singles[k]) if singles else ""
    return TrustReport(
        auc=auc(y_test, p_test),
        centralized_auc=auc(y_test, c_test),
        best_single_channel_auc=singles.get(best, float("nan")),
        best_single_channel=best,
        ece=expected_calibration_error(y_test, p_test),
        seconds=seconds,
        centralized_seconds=centralized_seconds,
        rounds=fed.log.rounds,
        bytes_sent=fed.log.bytes_sent,
        single_channel_auc=singles,
        auc_scored_rows=auc(y_test[t_scored], test_logits[t_scored]),
        centralized_auc_scored_rows=auc(y_test[t_scored], c_test[t_scored]),
        ece_uncalibrated=expected_calibration_error(y_test, p_raw),
        centralized_ece=expected_calibration_error(y_test, c_p),
        forward_rounds=fed.log.forward_rounds,
        bytes_up=fed.log.bytes_up,
        bytes_down=fed.log.bytes_down,
        scored_fraction=float(t_scored.mean()),
        excluded_training_rows=fed.log.excluded_rows,
        n_train=int(prepared.train_rows.size),
        n_validation=int(val.size),
        n_test=int(test.size),
        coverage=coverage,
        seed=seed,
        masking=masking,
        calibrator=cal.to_dict(),
        config=cfg.to_dict(),
    )


__all__ = [
    "VALIDATION_FRACTION",
    "TrustData",
    "TrustReport",
    "prepare_trust_data",
    "run_trust_experiment",
]
