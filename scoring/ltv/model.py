"""A trained LTV split model with the coordinator's calibration, served by any subset of parties.

The ZILN mean overshoots heavy-tailed spend (by 5-20 % here), so after training the coordinator
rescales ``E[spend]`` to match the actual total on the training customers, for whichever set
of parties answers (a shift of ``mu`` by ``log(scale)``: rankings do not change, intervals move
with the mean). The scale of a subset is computed the first time that subset is asked for, from
the training rows' labels the coordinator already holds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from accord.errors import InvalidInput
from accord.scoring.ltv.split import (
    ChannelParty,
    SplitConfig,
    TopParty,
    TrainingHistory,
    node_features,
    predict_split,
    train_split,
)
from accord.scoring.ziln import ZilnParams

__all__ = ["TrainedSplitModel", "train_ltv_model"]


@dataclass
class TrainedSplitModel:
    """Parties and top model after training, with per-subset calibration scales."""

    parties: list[ChannelParty]
    top: TopParty
    labels: np.ndarray
    train_rows: np.ndarray
    history: TrainingHistory
    seconds: float
    _scales: dict[frozenset[str], float] = field(default_factory=dict, repr=False)

    def _chosen(self, names: Sequence[str] | None) -> list[ChannelParty]:
        if names is None:
            return self.parties
        chosen = [p for p in self.parties if p.name in names]
        if not names or len(chosen) != len(set(names)):
            raise InvalidInput(f"unknown party among {', '.join(names) or 'no parties'}")
        return chosen

    def scale(self, names: Sequence[str] | None = None) -> float:
        """The calibration factor of ``E[spend]`` when the named parties (all: None) answer."""
        chosen = self._chosen(names)
        key = frozenset(p.name for p in chosen)
        if key not in self._scales:
            fitted = predict_split(chosen, self.top, self.train_rows).expected()
            actual = float(np.sum(self.labels[self.train_rows]))
            self._scales[key] = actual / max(float(np.sum(fitted)), 1e-9)
        return self._scales[key]

    def predict(self, rows: np.ndarray, parties: Sequence[str] | None = None) -> ZilnParams:
        """Calibrated mixture parameters for ``rows`` from the named parties (all by default)."""
        chosen = self._chosen(parties)
        raw = predict_split(chosen, self.top, rows)
        return ZilnParams(raw.p, raw.mu + np.log(self.scale(parties)), raw.sigma)


def train_ltv_model(
    features: dict[str, np.ndarray],
    rows_of: dict[str, np.ndarray],
    labels: np.ndarray,
    train_rows: np.ndarray,
    config: SplitConfig | None = None,
) -> TrainedSplitModel:
    """Train the split model: ``features[name]`` is party ``name``'s raw feature matrix and
    ``rows_of[name]`` the aligned row of each of its rows; ``labels`` holds one spend per
    aligned row (only ``train_rows`` are used, for training and for calibration)."""
    config = config or SplitConfig()
    if set(features) != set(rows_of):
        raise InvalidInput("every party needs both its features and its aligned rows")
    labels = np.asarray(labels, dtype=float)
    rows = np.asarray(train_rows, dtype=np.int64)
    start = time.perf_counter()
    parties = [
        ChannelParty(
            name, node_features(x), rows_of[name], len(labels), config, seed=config.seed + i
        )
        for i, (name, x) in enumerate(features.items())
    ]
    top = TopParty(labels, list(features), config, seed=config.seed + 100)
    history = train_split(parties, top, rows, config, np.random.default_rng(config.seed))
    model = TrainedSplitModel(parties, top, labels, rows, history, 0.0)
    model.scale()  # the full set's calibration belongs to training time
    model.seconds = time.perf_counter() - start
    return model
