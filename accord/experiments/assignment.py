"""Deterministic assignment from an opaque per-relationship key (e.g. the brand node's reference).

Two hashes, each domain-separated by its salt: hash(layer salt, key) picks one of the layer's
10,000 buckets, and only the experiment owning that bucket sees the customer, so experiments in
one layer are disjoint; hash(experiment salt, key) then picks the arm by the weights, independent
of the bucket (otherwise an arm would be a fixed slice of the layer and correlate across layers).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from itertools import accumulate

from accord.experiments.declaration import BUCKETS, Experiment

_UNIT = float(2**64)


def _hash64(salt: bytes, key: bytes) -> int:
    digest = hashlib.blake2b(key, key=salt[:64], digest_size=8, person=b"accord-expt").digest()
    return int.from_bytes(digest, "big")


def layer_bucket(layer_salt: bytes, key: bytes) -> int:
    """The customer's bucket in [0, 10000) of a layer."""
    return _hash64(layer_salt, key) % BUCKETS


def assign(experiment: Experiment, key: bytes) -> str | None:
    """The arm's name, or None when the customer's bucket belongs to no part of this experiment."""
    start, stop = experiment.buckets
    if not start <= layer_bucket(experiment.layer.salt, key) < stop:
        return None
    point = _hash64(experiment.salt, key) / _UNIT  # uniform in [0, 1)
    cumulative = list(accumulate(experiment.weights))
    index = min(bisect_right(cumulative, point), len(experiment.arms) - 1)
    return experiment.arms[index].name
