"""create_generators: the G1 points Q_1, H_1, ..., H_L that messages are signed against."""

from __future__ import annotations

import threading

from py_arkworks_bls12381 import G1Point

from accord.crypto.bbs.hashing import expand_message_xmd, hash_to_curve_g1
from accord.crypto.bbs.suite import API_ID, EXPAND_LENGTH

# The sequence is fixed per api_id, so it is computed once and extended on demand (the draft
# allows caching, as long as the order is kept).
_lock = threading.Lock()
_chains: dict[tuple[bytes, bytes], tuple[bytes, list[G1Point]]] = {}


def create_generators(
    count: int, api_id: bytes = API_ID, *, seed: bytes | None = None
) -> list[G1Point]:
    """The first ``count`` generators for ``api_id``.

    ``seed`` replaces the default generator seed ``api_id || "MESSAGE_GENERATOR_SEED"``; the
    ciphersuite derives its base point P1 that way.
    """
    if count < 0 or count > 2**64 - 1:
        raise ValueError("generator count out of range")
    generator_seed = api_id + b"MESSAGE_GENERATOR_SEED" if seed is None else seed
    seed_dst = api_id + b"SIG_GENERATOR_SEED_"
    generator_dst = api_id + b"SIG_GENERATOR_DST_"
    key = (api_id, generator_seed)
    with _lock:
        if key not in _chains:
            _chains[key] = (expand_message_xmd(generator_seed, seed_dst, EXPAND_LENGTH), [])
        v, points = _chains[key]
        for i in range(len(points) + 1, count + 1):
            v = expand_message_xmd(v + i.to_bytes(8, "big"), seed_dst, EXPAND_LENGTH)
            points.append(hash_to_curve_g1(v, generator_dst))
        _chains[key] = (v, points)
        return points[:count]
