"""Lifetime value on the trust model's machinery: masked split learning with a ZILN head.

The same protocol as :mod:`accord.scoring.split_model` (and as the coordinator runs it over
Flower): each channel's bottom model embeds its own rows, the coordinator sees only masked sums
over at least ``k`` channels (P2), trains the top model against the label node's holdout spend
with the zero-inflated log-normal likelihood, and returns the gradient of the sum. Party
dropout is the run-scoped dropout of the trust model.

Customers held by fewer than ``k`` channels cannot enter a sum without exposing one channel's
embedding, so the federated model says nothing about them. What the coordinator may still say
uses only what alignment already told it, *which* channels hold the customer: the
maximum-likelihood ZILN of the training customers with the same set of channels
(:attr:`FederatedLtv.priors`). :meth:`FederatedLtv.predict` marks which rows got which answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from accord.errors import InvalidInput
from accord.scoring import ziln
from accord.scoring.split_model import (
    MaskedSum,
    Party,
    SplitConfig,
    SplitTraining,
    availability,
    score_split,
    simulation_keys,
    train_split,
)
from accord.scoring.ziln import ZilnParams

LTV_SPLIT = SplitConfig(
    head="ziln", rounds=20, local_epochs=1, learning_rate=1e-3, party_dropout=0.15
)
"""The LTV run's settings: the trust model's architecture, trained gently (the ZILN head
overfits the ~4,400 CDNOW training customers that two channels hold within a few dozen
passes). Chosen on a validation split of the training customers (``customer_id % 5 == 1``,
never the test cohort) over rounds 20/30/40, learning rate 1e-3/3e-3, party dropout 0/0.15/0.3
and 1/2 local passes, two seeds each, keeping party dropout so the model serves any consented
subset of channels (dropout 0 ranked as well but would not)."""

SourceSet = tuple[bool, ...]


@dataclass(frozen=True)
class LtvPrediction:
    """ZILN parameters per requested row, and how each row was answered."""

    params: ZilnParams
    federated: npt.NDArray[np.bool_]
    """True where ≥ k channels contributed a masked sum; False where only the prior for the
    row's set of channels answered."""

    def expected(self) -> npt.NDArray[np.float64]:
        out: npt.NDArray[np.float64] = self.params.expected()
        return out


@dataclass
class FederatedLtv:
    """A trained LTV model: the split training, its parties, and the per-source-set priors."""

    training: SplitTraining
    parties: list[Party]
    priors: dict[SourceSet, ZilnParams]
    seed: int

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parties]

    def _prior(self, sources: SourceSet) -> ZilnParams:
        return self.priors.get(sources) or self.priors[()]

    def predict(self, rows: npt.ArrayLike, use: Sequence[str] | None = None) -> LtvPrediction:
        """One masked forward exchange over ``rows`` with the channels in ``use`` (all by
        default); rows below ``k`` channels get their source set's prior."""
        idx = np.asarray(rows, dtype=np.int64)
        aggregator = MaskedSum(simulation_keys(self.names, self.seed), b"ltv-score")
        scores = score_split(self.training, self.parties, idx, aggregator=aggregator, use=use)
        scored = scores.scored
        output = np.where(scored[:, None], np.asarray(scores.logits, dtype=np.float64), 0.0)
        fed = ziln.params_from_output_array(output)
        p, mu, sigma = fed.p.copy(), fed.mu.copy(), fed.sigma.copy()
        held = availability(self.parties)[idx]
        if use is not None:
            held = held & np.array([n in use for n in self.names])[None, :]
        for pattern in {tuple(bool(b) for b in row) for row in held[~scored]}:
            rows_of_pattern = ~scored & (held == np.array(pattern, dtype=bool)).all(axis=1)
            prior = self._prior(pattern)
            p[rows_of_pattern], mu[rows_of_pattern] = prior.p[0], prior.mu[0]
            sigma[rows_of_pattern] = prior.sigma[0]
        return LtvPrediction(ZilnParams(p, mu, sigma), scored.copy())


def fit_priors(
    held: npt.NDArray[np.bool_], labels: npt.NDArray[np.float64], train_rows: npt.ArrayLike
) -> dict[SourceSet, ZilnParams]:
    """The constant ZILN of the training customers for every set of channels holding them
    (and ``()`` for all training customers together)."""
    rows = np.asarray(train_rows, dtype=np.int64)
    priors: dict[SourceSet, ZilnParams] = {(): ziln.fit_constant(labels[rows])}
    patterns = {tuple(bool(b) for b in held[r]) for r in rows}
    for pattern in patterns:
        mask = (held[rows] == np.array(pattern)).all(axis=1)
        if mask.sum() >= 20:  # fewer customers give no useful estimate
            priors[pattern] = ziln.fit_constant(labels[rows[mask]])
    return priors


def train_ltv_federated(
    features: Mapping[str, np.ndarray],
    rows_of: Mapping[str, np.ndarray],
    labels: npt.ArrayLike,
    train_rows: npt.ArrayLike,
    config: SplitConfig = LTV_SPLIT,
    *,
    seed: int = 0,
) -> FederatedLtv:
    """Train on ``features[channel]`` (a node's own preprocessed rows) placed at
    ``rows_of[channel]`` (their positions in the aligned row space), against spends."""
    if config.head != "ziln":
        config = replace(config, head="ziln")
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 1 or not np.isfinite(y).all() or (y < 0).any():
        raise InvalidInput("spend labels must be finite and non-negative")
    parties = []
    for name, x in features.items():
        local = np.full(y.size, -1, dtype=np.int64)
        local[np.asarray(rows_of[name], dtype=np.int64)] = np.arange(len(x))
        parties.append(Party(name, np.asarray(x, dtype=np.float32), local))
    names = [p.name for p in parties]
    aggregator = MaskedSum(simulation_keys(names, seed), b"ltv-train")
    training = train_split(parties, y, train_rows, config, aggregator=aggregator, seed=seed)
    priors = fit_priors(availability(parties), y, train_rows)
    return FederatedLtv(training, parties, priors, seed)


__all__ = ["LTV_SPLIT", "FederatedLtv", "LtvPrediction", "fit_priors", "train_ltv_federated"]
