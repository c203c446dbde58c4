"""A masking round's plan, bound into its masks and checked by every node (P2 against a
coordinator that deviates).

The coordinator plans each round: which nodes take part and, for each, the matrix rows it
fills. A node that took the round id and its own positions on trust could be told things that
expose a partner: "contribute these rows" while the partner is told "contribute nothing" (the
sum of those rows is then one node's embedding), or the same round twice with different plans
(the difference of two answers). So every node receives the **whole** plan and

- checks it (:func:`check_round_plan`): its own positions are the plan's, in range, each once,
  and every row it fills is filled by at least ``k`` nodes of the plan;
- masks under the **bound** round id (:func:`bind_round_plan`): SHA-256 over the coordinator's
  round id, the purpose, the matrix height and every participant's positions. Nodes told
  different plans derive different pairwise seeds, their masks do not cancel, and the
  coordinator's "sum" is uniform noise;
- answers each coordinator round id at most once (state kept by the node, not here).

Pure: no I/O, no clock, no randomness.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from accord.crypto.errors import MalformedInput
from accord.crypto.masking import MAX_NODES, MIN_NODES, ROUND_ID_BYTES

PLAN_PREFIX = b"accord-round-plan-v1"
IntArray = npt.NDArray[np.int64]

__all__ = ["PLAN_PREFIX", "bind_round_plan", "check_round_plan", "plan_positions"]


def _lp(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def plan_positions(plan: Mapping[str, npt.ArrayLike]) -> dict[str, IntArray]:
    """The plan with every node's positions as ``int64`` arrays, names checked."""
    if not MIN_NODES <= len(plan) <= MAX_NODES:
        raise MalformedInput(f"a round plan names {MIN_NODES}..{MAX_NODES} nodes, got {len(plan)}")
    out = {}
    for name, positions in plan.items():
        if not isinstance(name, str) or not name or len(name.encode()) > 255:
            raise MalformedInput("a round plan names each node by a non-empty name")
        pos = np.asarray(positions)
        if pos.ndim != 1 or (pos.size and not np.issubdtype(pos.dtype, np.integer)):
            raise MalformedInput(f"{name!r}'s positions must be a list of row numbers")
        out[name] = pos.astype(np.int64, copy=False)
    return out


def bind_round_plan(
    round_id: bytes, purpose: str, n_rows: int, plan: Mapping[str, npt.ArrayLike]
) -> bytes:
    """The 32-byte id the round's masks are derived under: the coordinator's ``round_id``
    bound to the whole plan (``SHA-256(prefix || lp(round id) || lp(purpose) || u64 rows ||
    u16 count || (lp(name) || u64 count || int64-LE positions) per node in name order)``)."""
    if not isinstance(round_id, bytes) or len(round_id) != ROUND_ID_BYTES:
        raise MalformedInput(f"a round id is {ROUND_ID_BYTES} bytes")
    if not 0 <= n_rows < 1 << 63:
        raise MalformedInput("a round's matrix height must be a non-negative integer")
    positions = plan_positions(plan)
    h = hashlib.sha256(PLAN_PREFIX)
    h.update(_lp(round_id))
    h.update(_lp(purpose.encode("utf-8")))
    h.update(struct.pack(">QH", n_rows, len(positions)))
    for name in sorted(positions, key=lambda n: n.encode()):
        pos = positions[name]
        h.update(_lp(name.encode()))
        h.update(struct.pack(">Q", pos.size))
        h.update(pos.astype("<i8").tobytes())
    return h.digest()


def check_round_plan(
    me: str, n_rows: int, plan: Mapping[str, npt.ArrayLike], *, k: int = MIN_NODES
) -> IntArray:
    """``me``'s positions in ``plan``, after checking that ``me`` takes part, that every
    node's positions are distinct rows of the matrix, and that each row ``me`` fills has at
    least ``k`` contributors. Raises :class:`MalformedInput` saying which check failed."""
    if k < MIN_NODES:
        raise MalformedInput(f"k must be at least {MIN_NODES}, got {k}")
    positions = plan_positions(plan)
    if me not in positions:
        raise MalformedInput(f"{me!r} is not a participant of this round")
    counts = np.zeros(max(n_rows, 0), dtype=np.int64)
    for name, pos in positions.items():
        if pos.size and (pos.min() < 0 or pos.max() >= n_rows):
            raise MalformedInput(f"{name!r}'s positions fall outside the round's {n_rows} rows")
        if np.unique(pos).size != pos.size:
            raise MalformedInput(f"{name!r}'s positions name a row twice")
        counts[pos] += 1
    mine = positions[me]
    short = int((counts[mine] < k).sum()) if mine.size else 0
    if short:
        raise MalformedInput(
            f"{short} of the rows {me!r} would fill have fewer than {k} contributors: their "
            "sum would expose this node's embedding, so it does not answer"
        )
    return mine
