"""``accord bench ltv --scenario cdnow``: the federated LTV model against its references.

One run, on the fixed split of DESIGN.md (train on every customer with ``customer_id % 5 != 0``,
report on the test cohort ``customer_id % 5 == 0``).

The headline is what the product can answer while keeping P2: the trust model's masked split
learning with a ZILN head (:mod:`accord.scoring.ltv.federated`), which sees only sums over at
least ``k = 2`` channels. On CDNOW most customers (78 %) buy through one channel only; for them
the federated model may not answer, and the lone channel answers with its own spend model
(BG/NBD and Gamma-Gamma on its own purchases), scaled by one aggregate per channel
(:mod:`accord.scoring.ltv.fallback`), exactly as a node does over the network. The JSON
gives that headline on the whole test cohort, ``below_k`` (the fallback's scales, and the whole
cohort with the per-channel-set ZILN prior instead of the fallback), ``at_k`` on the customers at
least ``k`` channels hold (federated, baseline and best single channel on the same customers),
and ``without_p2`` the references below, trained on summed embeddings that include
single-channel customers (what P2 forbids):

- **federated**: the split model of :mod:`accord.scoring.ltv.split`, one bottom model per
  channel on that channel's own features, trained with random party dropout;
- **centralized**: the same-capacity network trained in one place on the joined data (every
  channel's features side by side, zeros and a presence flag where a channel lacks the
  customer), no dropout;
- **single channels**: the split model with one party only (customers the channel lacks get
  the top model's answer for an all-zero embedding);
- **pooled**: for reference, the same network on features computed from the merged
  transaction log, i.e. what one party that saw every purchase could do;
- **baseline**: BG/NBD + Gamma-Gamma on all channels merged (:mod:`.baseline`).

Every network predicts ``E[spend]`` from its ZILN head, calibrated so that predicted and actual
spend agree in total on the training customers (see :mod:`.model`).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accord.data import cdnow
from accord.errors import InvalidInput
from accord.scoring import split_model
from accord.scoring.ltv.baseline import fit_btyd_baseline
from accord.scoring.ltv.fallback import (
    MIN_SCALE_CUSTOMERS,
    OWN_ESTIMATE_EXPONENT,
    fallback_scale,
    own_channel_estimates,
)
from accord.scoring.ltv.federated import (
    LTV_SPLIT,
    FederatedLtv,
    LtvPrediction,
    train_ltv_federated,
)
from accord.scoring.ltv.metrics import LtvMetrics, decile_chart, ltv_metrics
from accord.scoring.ltv.model import train_ltv_model
from accord.scoring.ltv.split import SplitConfig, node_features, torch_threads
from accord.scoring.ziln import params_from_output_array

__all__ = ["LtvExperiment", "run_ltv_experiment"]

DEFAULT_CONFIG = SplitConfig()


@dataclass(frozen=True)
class AtK:
    """The P2 model where it may answer: test customers held by at least ``k`` channels."""

    k: int
    n: int
    federated: LtvMetrics
    baseline: LtvMetrics
    single_channels: dict[str, LtvMetrics]
    interval_coverage: float

    @property
    def best_single_channel(self) -> str:
        return max(self.single_channels, key=lambda c: self.single_channels[c].gini)

    def as_dict(self) -> dict[str, Any]:
        best = self.best_single_channel
        return {
            "n_test": self.n,
            "federated": _rounded(self.federated),
            "baseline": _rounded(self.baseline),
            "best_single_channel": {"channel": best, **_rounded(self.single_channels[best])},
            "beats_baseline": self.federated.beats(self.baseline),
            "beats_best_single_channel": self.federated.beats(self.single_channels[best]),
            "interval_coverage": round(self.interval_coverage, 4),
        }


@dataclass(frozen=True)
class BelowK:
    """How the test customers fewer than ``k`` channels hold were answered."""

    n: int
    answered_by_own_channel: int
    scales: dict[str, float]
    with_priors: LtvMetrics  # the whole cohort had the channel-set prior answered below k

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_test": self.n,
            "answered_by_own_channel": self.answered_by_own_channel,
            "own_channel_scales": {c: round(v, 4) for c, v in self.scales.items()},
            "own_estimate_exponent": OWN_ESTIMATE_EXPONENT,
            "min_scale_customers": MIN_SCALE_CUSTOMERS,
            "with_channel_set_priors_instead": _rounded(self.with_priors),
        }


@dataclass(frozen=True)
class LtvExperiment:
    """The numbers of one ``bench ltv`` run; :meth:`as_dict` is the JSON contract."""

    masked: LtvMetrics  # the P2 model on the whole test cohort (own channel's model below k)
    below_k: BelowK
    at_k: AtK
    masked_seconds: float
    masked_rounds: int
    masked_bytes: int
    masked_interval_coverage: float
    federated: LtvMetrics
    baseline: LtvMetrics
    centralized: LtvMetrics
    single_channels: dict[str, LtvMetrics]
    pooled: LtvMetrics
    baseline_all_customers: LtvMetrics
    subsets: dict[str, LtvMetrics]  # the federated model served by a subset of the parties
    seconds: float
    centralized_seconds: float
    baseline_seconds: float
    rounds: int  # embedding exchanges (forward + backward) of federated training
    bytes_sent: int  # float32 embedding and gradient payload, all parties, both ways
    n_train: int
    n_test: int
    calibration_scale: float
    interval_coverage: float  # share of test customers inside the 80 % interval
    chart: Path | None = None

    @property
    def best_single_channel(self) -> str:
        return max(self.single_channels, key=lambda c: self.single_channels[c].gini)

    def as_dict(self) -> dict[str, Any]:
        best = self.best_single_channel
        out: dict[str, Any] = {
            **_rounded(self.masked),
            "baseline": _rounded(self.baseline),
            "beats_baseline": self.masked.beats(self.baseline),
            "beats_best_single_channel": self.masked.beats(self.single_channels[best]),
            "k": self.at_k.k,
            "coverage_at_k": round(self.at_k.n / self.n_test, 4),
            "below_k": self.below_k.as_dict(),
            "at_k": self.at_k.as_dict(),
            "interval_coverage": round(self.masked_interval_coverage, 4),
            "seconds": round(self.masked_seconds, 2),
            "rounds": self.masked_rounds,
            "bytes_sent": self.masked_bytes,
            "without_p2": {
                "federated": _rounded(self.federated),
                "beats_baseline": self.federated.beats(self.baseline),
                "centralized": _rounded(self.centralized),
                "best_single_channel": {"channel": best, **_rounded(self.single_channels[best])},
                "single_channels": {c: _rounded(m) for c, m in self.single_channels.items()},
                "pooled": _rounded(self.pooled),
                "subsets": {k: _rounded(m) for k, m in self.subsets.items()},
                "interval_coverage": round(self.interval_coverage, 4),
                "calibration_scale": round(self.calibration_scale, 4),
                "seconds": round(self.seconds, 2),
                "centralized_seconds": round(self.centralized_seconds, 2),
                "rounds": self.rounds,
                "bytes_sent": self.bytes_sent,
            },
            "baseline_all_customers": _rounded(self.baseline_all_customers),
            "baseline_seconds": round(self.baseline_seconds, 2),
            "n_train": self.n_train,
            "n_test": self.n_test,
        }
        if self.chart is not None:
            out["chart"] = str(self.chart)
        return out


def _rounded(metrics: LtvMetrics) -> dict[str, float]:
    return {k: round(v, 4) for k, v in metrics.as_dict().items()}


def _joined(features: dict[str, np.ndarray], rows_of: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Every channel's features side by side; zeros and a presence flag where absent."""
    blocks = []
    for name, x in features.items():
        block = np.zeros((n, x.shape[1] + 1))
        block[rows_of[name], :-1] = x
        block[rows_of[name], -1] = 1.0
        blocks.append(block)
    return np.hstack(blocks)


def run_ltv_experiment(
    transactions: pd.DataFrame | None = None,
    *,
    data_path: Path | None = None,
    config: SplitConfig = DEFAULT_CONFIG,
    masked_config: split_model.SplitConfig = LTV_SPLIT,
    channel_seed: int = cdnow.CHANNEL_SEED,
    chart_path: Path | None = None,
    threads: int | None = 1,
) -> LtvExperiment:
    """Run the LTV benchmark on a CDNOW-shaped log (``transactions``, or the file at
    ``data_path``). ``threads`` caps torch's intra-op threads for the run (small networks run
    fastest on one); ``None`` leaves torch's setting alone."""
    if (transactions is None) == (data_path is None):
        raise InvalidInput("give either a transaction frame or the path of CDNOW_master.txt")
    if transactions is None:
        assert data_path is not None
        transactions = cdnow.load_cdnow(data_path)
    with torch_threads(threads):
        return _run(transactions, config, masked_config, channel_seed, chart_path)


def _below_k(
    scenario: cdnow.LtvScenario,
    model: FederatedLtv,
    labels: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    prediction: LtvPrediction,
) -> tuple[np.ndarray, BelowK]:
    """The test cohort's answers: the federated model at k, the lone channel's own scaled
    spend model below k (the channel-set prior where a channel has too few customers
    below k to form a group sum)."""
    held = split_model.availability(model.parties)
    lone = held.sum(axis=1) == 1
    answer = prediction.expected().copy()
    below = ~prediction.federated
    estimates = own_channel_estimates(scenario.transactions, model.names)
    scales: dict[str, float] = {}
    answered = np.zeros(test_rows.size, dtype=bool)
    for j, channel in enumerate(model.names):
        own = estimates[channel].reindex(scenario.label.index).to_numpy(dtype=float)
        # only this channel holds them, and it has calibration purchases of them
        alone = lone & held[:, j] & np.isfinite(own)
        fit = train_rows[alone[train_rows]]
        if fit.size < MIN_SCALE_CUSTOMERS:
            continue
        scales[channel] = fallback_scale(own[fit], labels[fit])
        mine = below & alone[test_rows]
        answer[mine] = own[test_rows][mine] * scales[channel]
        answered |= mine
    with_priors = ltv_metrics(prediction.expected(), labels[test_rows])
    return answer, BelowK(int(below.sum()), int(answered.sum()), scales, with_priors)


def _run_at_k(
    model: FederatedLtv,
    prediction: LtvPrediction,
    labels: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    baseline: np.ndarray,
) -> AtK:
    """The P2 model (its ``prediction`` for ``test_rows``), the baseline and every channel alone
    on the test customers at ``k``."""
    federated_rows = prediction.federated
    rows = test_rows[federated_rows]
    y = labels[rows]
    alone = replace(model.training.config, party_dropout=0.0)
    singles = {}
    for party in model.parties:
        trained = split_model.train_single_channel(party, labels, train_rows, alone)
        output = trained.logits([party], rows)
        singles[party.name] = ltv_metrics(params_from_output_array(output).expected(), y)
    low, high = prediction.params.interval(0.8)
    inside = (labels[test_rows] >= low) & (labels[test_rows] <= high)
    return AtK(
        k=model.training.config.min_contributors,
        n=int(rows.size),
        federated=ltv_metrics(prediction.expected()[federated_rows], y),
        baseline=ltv_metrics(baseline[rows], y),
        single_channels=singles,
        interval_coverage=float(inside[federated_rows].mean()),
    )


def _run(
    transactions: pd.DataFrame,
    config: SplitConfig,
    masked_config: split_model.SplitConfig,
    channel_seed: int,
    chart_path: Path | None,
) -> LtvExperiment:
    scenario = cdnow.build_scenario(transactions, seed=channel_seed)
    ids = scenario.customer_ids
    labels = scenario.label.to_numpy(dtype=float)
    n = len(ids)
    test = cdnow.in_test_cohort(ids)
    train_rows, test_rows = np.flatnonzero(~test), np.flatnonzero(test)
    if len(train_rows) == 0 or len(test_rows) < 10:
        raise InvalidInput("the log needs training customers and at least 10 test customers")
    features = {c: scenario.features[c].to_numpy(dtype=float) for c in cdnow.CHANNELS}
    # Alignment stands in for PSI here: each channel's customers mapped to the label's rows.
    rows_of = {
        c: np.searchsorted(ids, scenario.features[c].index.to_numpy(dtype=np.int64))
        for c in cdnow.CHANNELS
    }
    y_test = labels[test_rows]

    # Each node preprocesses its own columns with its own statistics.
    own = {c: node_features(x) for c, x in features.items()}
    masked = train_ltv_federated(own, rows_of, labels, train_rows, masked_config)
    masked_prediction = masked.predict(test_rows)
    masked_low, masked_high = masked_prediction.params.interval(0.8)
    headline, below_k = _below_k(scenario, masked, labels, train_rows, test_rows, masked_prediction)

    federated = train_ltv_model(features, rows_of, labels, train_rows, config)
    fed_params = federated.predict(test_rows)
    fed_pred = fed_params.expected()

    wide = replace(
        config,
        party_dropout=0.0,
        bottom_hidden=config.bottom_hidden * len(features),
        embedding_dim=config.embedding_dim,
    )
    everyone = np.arange(n)
    central = train_ltv_model(
        {"joined": _joined(features, rows_of, n)}, {"joined": everyone}, labels, train_rows, wide
    )
    pooled_features = cdnow.channel_features(scenario.transactions).reindex(ids)
    pooled = train_ltv_model(
        {"pooled": pooled_features.to_numpy(dtype=float)},
        {"pooled": everyone},
        labels,
        train_rows,
        wide,
    )
    singles = {
        c: train_ltv_model(
            {c: features[c]},
            {c: rows_of[c]},
            labels,
            train_rows,
            replace(config, party_dropout=0.0),
        )
        for c in cdnow.CHANNELS
    }

    start = time.perf_counter()
    btyd = fit_btyd_baseline(scenario.transactions)
    baseline_seconds = time.perf_counter() - start
    base_all = btyd.predicted.reindex(scenario.label.index).to_numpy(dtype=float)

    subsets: dict[str, LtvMetrics] = {}
    for size in range(1, len(features)):
        for names in itertools.combinations(cdnow.CHANNELS, size):
            predicted = federated.predict(test_rows, names).expected()
            subsets["+".join(names)] = ltv_metrics(predicted, y_test)

    low, high = fed_params.interval(0.8)
    coverage = float(np.mean((y_test >= low) & (y_test <= high)))
    at_k = _run_at_k(masked, masked_prediction, labels, train_rows, test_rows, base_all)

    chart = None
    if chart_path is not None:
        chart = decile_chart(
            chart_path,
            {
                "federated (k = 2; own channel below)": headline,
                "federated without P2": fed_pred,
                "centralized": central.predict(test_rows).expected(),
                "BG/NBD + Gamma-Gamma": base_all[test_rows],
            },
            y_test,
        )

    log = masked.training.log
    return LtvExperiment(
        masked=ltv_metrics(headline, y_test),
        below_k=below_k,
        at_k=at_k,
        masked_seconds=log.seconds,
        masked_rounds=log.rounds,
        masked_bytes=log.bytes_up + log.bytes_down,
        masked_interval_coverage=float(np.mean((y_test >= masked_low) & (y_test <= masked_high))),
        federated=ltv_metrics(fed_pred, y_test),
        baseline=ltv_metrics(base_all[test_rows], y_test),
        centralized=ltv_metrics(central.predict(test_rows).expected(), y_test),
        single_channels={
            c: ltv_metrics(model.predict(test_rows).expected(), y_test)
            for c, model in singles.items()
        },
        pooled=ltv_metrics(pooled.predict(test_rows).expected(), y_test),
        baseline_all_customers=ltv_metrics(base_all, labels),
        subsets=subsets,
        seconds=federated.seconds,
        centralized_seconds=central.seconds,
        baseline_seconds=baseline_seconds,
        rounds=federated.history.exchanges,
        bytes_sent=4 * federated.history.embedding_floats_sent,
        n_train=len(train_rows),
        n_test=len(test_rows),
        calibration_scale=federated.scale(),
        interval_coverage=coverage,
        chart=chart,
    )
