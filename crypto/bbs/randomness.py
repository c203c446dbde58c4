"""The random scalars ProofGen blinds with, and the draft's seeded stand-in for test vectors."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence

from accord.crypto.bbs.hashing import expand_message_xmd
from accord.crypto.bbs.suite import API_ID, EXPAND_LENGTH, R
from accord.crypto.errors import MalformedInput

# count -> that many scalars mod r; ProofGen takes one so tests can fix its randomness.
RandomScalars = Callable[[int], Sequence[int]]

MOCK_RANDOM_SCALARS_DST = API_ID + b"MOCK_RANDOM_SCALARS_DST_"


def calculate_random_scalars(count: int) -> list[int]:
    """``count`` independent uniform scalars from the operating system's CSPRNG."""
    return [int.from_bytes(secrets.token_bytes(EXPAND_LENGTH), "big") % R for _ in range(count)]


def seeded_random_scalars(
    seed: bytes, count: int, dst: bytes = MOCK_RANDOM_SCALARS_DST
) -> list[int]:
    """The draft's mocked_calculate_random_scalars: deterministic, for test vectors only."""
    out_len = EXPAND_LENGTH * count
    if out_len > 255 * 32:  # expand_message_xmd's limit with SHA-256: 170 scalars
        raise MalformedInput("at most 170 seeded scalars can be drawn")
    v = expand_message_xmd(seed, dst, out_len)
    return [
        int.from_bytes(v[i : i + EXPAND_LENGTH], "big") % R
        for i in range(0, out_len, EXPAND_LENGTH)
    ]


def seeded(seed: bytes, dst: bytes = MOCK_RANDOM_SCALARS_DST) -> RandomScalars:
    """A :data:`RandomScalars` that replays :func:`seeded_random_scalars` (never in production)."""

    def draw(count: int) -> list[int]:
        return seeded_random_scalars(seed, count, dst)

    return draw
