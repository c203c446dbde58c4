"""Secure aggregation by pairwise additive masking (property P2, "aggregate only").

In vertical split learning every node sends the coordinator its bottom-model embedding of the
aligned rows, a ``rows × dim`` float matrix. The coordinator needs only their sum. Each node
therefore sends its matrix *masked*: encoded in fixed point over the ring Z/2^64 (``uint64``
with wrap-around arithmetic) and added to pseudorandom pairwise masks that cancel exactly in
the sum over the round's node set, and only there. One node's masked matrix is uniform on the
ring to anyone who does not hold one of its pairwise secrets.

Fixed point
    A value ``x`` is encoded as ``round(x · 2^20)`` in two's complement modulo 2^64
    (:data:`FRACTIONAL_BITS` = 20, resolution ≈ 9.5e-7; rounding error ≤ 2^-21 per value).
    Values must satisfy ``|x| ≤ 2^38`` (:data:`MAX_ABS_VALUE`, ≈ 2.7e11) and be finite, so a
    sum over up to :data:`MAX_NODES` = 16 nodes stays within ``±2^62`` and can never wrap; a
    value outside the bound is refused, never silently clipped (clip or rescale first).

Pairwise masks
    For nodes ``i`` and ``j`` of a round, ``s_ij = X25519(i, j)`` is the shared secret of their
    registered key-agreement keys. The pair's seed is::

        seed_ij = HKDF-SHA256(ikm = s_ij, salt = round id,
                              info = "accord-mask-v1" || 0x00 || lp(lo) || lp(hi) || lp(purpose))

    where ``lo < hi`` are the two node names as UTF-8 bytes in byte order and ``lp(x)`` is
    ``x`` prefixed by its length as a 2-byte big-endian integer. The mask is the ChaCha20
    keystream under ``seed_ij`` with a fixed all-zero 16-byte nonce (counter 0) — safe because
    every seed keys exactly one stream — read as little-endian ``uint64`` words, row-major. Node
    ``i`` adds ``+mask_ij`` when ``name_i < name_j`` and ``−mask_ij`` otherwise, so each pair's
    two contributions cancel modulo 2^64 in the sum.

One mask, one matrix
    Every (round id, purpose) masks **exactly one** matrix per node. Masking two matrices with
    the same round id and purpose hands the coordinator their difference in the clear. Round
    ids come from :func:`derive_round_id`, which binds the run, round number, attempt number
    and the exact node set; a node should keep the round ids it has answered and refuse a
    repeat (that state lives outside this pure module).

A node drops mid-round
    Masks cancel only over the full node set, and unmasking a dropped node's pairwise masks
    would need the live nodes to reveal pairwise secrets (or masks) that, combined with the
    dropped node's late message, would expose its matrix. So a round that loses a node is
    abandoned, never repaired: the coordinator discards every message of that round id and
    asks the live nodes to redo it with ``attempt + 1`` over the live set
    (:func:`derive_round_id` gives a fresh id, hence fresh seeds). Caveat: a redo yields the
    sum over the live set; if the dropped node's message for the abandoned attempt is still
    used, sum(old set) − sum(live set) reveals the dropped nodes' sum. The coordinator must
    therefore refuse messages of an abandoned round id (:func:`aggregate` takes the expected
    round id for this), and the redo is only aggregate-safe against a coordinator that keeps
    them if at least ``k`` nodes dropped.

Everything here is deterministic: no I/O, no clock, no ambient randomness. Secrets come in as
keys; round identifiers are parameters.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from accord.crypto.errors import MalformedInput
from accord.crypto.keys import KeyAgreementKey, check_x25519_public

FRACTIONAL_BITS = 20
"""Fractional bits of the fixed-point encoding: a value ``x`` is stored as ``round(x·2^20)``."""
SCALE = float(1 << FRACTIONAL_BITS)
MAX_NODES = 16
"""Most nodes one round may have: the magnitude bound below is sized for this many summands."""
MAX_ABS_VALUE = float(1 << 38)
"""Largest ``|x|`` accepted: ``MAX_NODES · 2^38 · 2^20 = 2^62 < 2^63``, so no sum can wrap."""
MIN_NODES = 2
"""Default ``k`` of property P2: the coordinator sees sums over at least this many nodes."""
MAX_ELEMENTS = 1 << 26
"""Most entries one masked matrix may have (512 MiB of ``uint64``); larger inputs are refused."""
ROUND_ID_BYTES = 32
DEFAULT_PURPOSE = "embedding"
MASK_INFO_PREFIX = b"accord-mask-v1"
"""HKDF ``info`` prefix; bump the version when the derivation changes."""
ROUND_ID_PREFIX = b"accord-round-v1"

_MAX_NAME_BYTES = 255
_MAX_PURPOSE_BYTES = 64
_NONCE = bytes(16)  # ChaCha20: 4-byte little-endian counter (0) || 12-byte nonce (0)
_WORD = np.dtype("<u8")

Shape = tuple[int, int]
"""``(rows, dim)`` of an embedding matrix."""


class RoundMismatch(MalformedInput):
    """The masked matrices do not come from exactly the round's node set: masks would not cancel.

    ``missing`` and ``unexpected`` name the nodes that differ, so the caller can redo the round
    over the live nodes (see the module's notes on dropped nodes).
    """

    def __init__(self, message: str, *, missing: frozenset[str], unexpected: frozenset[str]):
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected


class TooFewNodes(MalformedInput):
    """Fewer than ``k`` nodes would contribute: a sum would reveal (nearly) one node's vector."""


# --- names, ids, shapes -------------------------------------------------------------------


def _name_bytes(name: str, what: str = "node name") -> bytes:
    if not isinstance(name, str) or not name:
        raise MalformedInput(f"{what} must be a non-empty string")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedInput(f"{what} {name!r} is not valid Unicode text") from exc
    if len(raw) > _MAX_NAME_BYTES:
        raise MalformedInput(f"{what} is {len(raw)} bytes; at most {_MAX_NAME_BYTES} allowed")
    return raw


def _purpose_bytes(purpose: str) -> bytes:
    if not (
        isinstance(purpose, str)
        and 0 < len(purpose) <= _MAX_PURPOSE_BYTES
        and purpose.isascii()
        and purpose.isprintable()
        and " " not in purpose
    ):
        raise MalformedInput(
            f"mask purpose must be 1..{_MAX_PURPOSE_BYTES} printable ASCII characters "
            f"without spaces, got {purpose!r}"
        )
    return purpose.encode("ascii")


def _lp(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def _check_round_id(round_id: bytes) -> None:
    if not isinstance(round_id, bytes) or len(round_id) != ROUND_ID_BYTES:
        got = len(round_id) if isinstance(round_id, bytes) else type(round_id).__name__
        raise MalformedInput(
            f"a round id is {ROUND_ID_BYTES} bytes (use derive_round_id), got {got}"
        )


def _check_shape(shape: Sequence[int]) -> Shape:
    if (
        len(shape) != 2
        or not all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in shape)
        or min(shape) < 0
    ):
        raise MalformedInput(f"an embedding shape is (rows, dim) of non-negative ints, got {shape}")
    rows, dim = int(shape[0]), int(shape[1])
    if rows * dim > MAX_ELEMENTS:
        raise MalformedInput(
            f"embedding of {rows} × {dim} entries exceeds the limit of {MAX_ELEMENTS}; "
            "send the rows in smaller rounds"
        )
    return rows, dim


def derive_round_id(run_id: bytes, round_no: int, attempt: int, node_set: Iterable[str]) -> bytes:
    """The 32-byte id of one attempt at one masking round over exactly ``node_set``.

    ``SHA-256("accord-round-v1" || lp(run_id) || u64 round_no || u32 attempt || u16 count ||
    lp(name) for each name in byte order)``. A different run, round, attempt or node set gives
    a different id and hence fresh pairwise seeds. When a node drops, redo the round with
    ``attempt + 1`` and the live node set.
    """
    if not isinstance(run_id, bytes) or not 0 < len(run_id) <= 0xFFFF:
        raise MalformedInput("run id must be 1..65535 bytes")
    if not 0 <= round_no < 1 << 64:
        raise MalformedInput(f"round number must be in [0, 2**64), got {round_no}")
    if not 0 <= attempt < 1 << 32:
        raise MalformedInput(f"attempt number must be in [0, 2**32), got {attempt}")
    names = [_name_bytes(n) for n in node_set]
    ordered = sorted(set(names))
    if len(ordered) != len(names):
        raise MalformedInput("a round's node set names some node twice")
    if not MIN_NODES <= len(ordered) <= MAX_NODES:
        raise MalformedInput(
            f"a masking round has {MIN_NODES}..{MAX_NODES} nodes, got {len(ordered)}"
        )
    h = hashlib.sha256(ROUND_ID_PREFIX)
    h.update(_lp(run_id))
    h.update(struct.pack(">QIH", round_no, attempt, len(ordered)))
    for name in ordered:
        h.update(_lp(name))
    return h.digest()


# --- fixed point --------------------------------------------------------------------------


def encode_fixed_point(values: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """Encode real values as ``round(x · 2^20) mod 2^64`` (two's complement), elementwise.

    Raises :class:`MalformedInput` for non-numeric input, NaN or infinity, or ``|x|`` above
    :data:`MAX_ABS_VALUE`; the message gives the first offending index, never the value.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        raise MalformedInput(f"embedding values must be real numbers, got dtype {arr.dtype}")
    # min/max propagate NaN, so one pass without temporaries checks finiteness and the bound.
    if arr.size and not (arr.min() >= -MAX_ABS_VALUE and arr.max() <= MAX_ABS_VALUE):
        x = arr.astype(np.float64, copy=False)
        bad = ~np.isfinite(x)
        if bad.any():
            raise MalformedInput(
                f"embedding value at index {_first_index(bad)} is not finite (NaN or infinity)"
            )
        raise MalformedInput(
            f"embedding value at index {_first_index(np.abs(x) > MAX_ABS_VALUE)} exceeds the "
            f"fixed-point bound ±2^38 (≈{MAX_ABS_VALUE:.3g}) that keeps sums over {MAX_NODES} "
            "nodes from wrapping; clip or rescale the embedding before masking"
        )
    scaled = np.multiply(arr, SCALE, dtype=np.float64)  # exact: the scale is a power of two
    np.rint(scaled, out=scaled)
    words: npt.NDArray[np.uint64] = scaled.astype(np.int64).view(np.uint64)
    return words


def decode_fixed_point(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Read ``uint64`` ring elements as two's complement fixed point: ``int64(w) / 2^20``."""
    arr = np.asarray(words)
    if arr.dtype != np.uint64:
        raise MalformedInput(f"fixed-point words must be uint64, got dtype {arr.dtype}")
    return arr.view(np.int64).astype(np.float64) / SCALE


def _first_index(mask: npt.NDArray[np.bool_]) -> tuple[int, ...]:
    flat = int(np.flatnonzero(mask)[0])
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


# --- seeds and masks ----------------------------------------------------------------------


def pairwise_seed(
    shared_secret: bytes,
    round_id: bytes,
    name_a: str,
    name_b: str,
    purpose: str = DEFAULT_PURPOSE,
) -> bytes:
    """The 32-byte mask seed of the pair ``{name_a, name_b}`` for one round and purpose.

    Symmetric in the two names. ``shared_secret`` is the raw X25519 output of the pair.
    """
    if not isinstance(shared_secret, bytes) or len(shared_secret) != 32:
        raise MalformedInput("an X25519 shared secret is 32 bytes")
    _check_round_id(round_id)
    a, b = _name_bytes(name_a), _name_bytes(name_b)
    if a == b:
        raise MalformedInput(f"a mask pair needs two distinct nodes, got {name_a!r} twice")
    lo, hi = sorted((a, b))
    info = MASK_INFO_PREFIX + b"\x00" + _lp(lo) + _lp(hi) + _lp(_purpose_bytes(purpose))
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=round_id, info=info)
    return hkdf.derive(shared_secret)


def expand_mask(seed: bytes, shape: Sequence[int]) -> npt.NDArray[np.uint64]:
    """The ChaCha20 keystream under ``seed`` as a ``rows × dim`` array of ``uint64`` words."""
    rows, dim = _check_shape(shape)
    mask = np.zeros((rows, dim), dtype=np.uint64)
    _keystream_into(seed, bytes(mask.nbytes), bytearray(mask.nbytes), mask, +1)
    return mask


def _keystream_into(
    seed: bytes,
    zeros: bytes,
    scratch: bytearray,
    acc: npt.NDArray[np.uint64],
    sign: int,
) -> None:
    """``acc ± keystream(seed)`` in place; ``zeros`` and ``scratch`` are ``acc.nbytes`` long."""
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise MalformedInput("a mask seed is 32 bytes")
    encryptor = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()
    encryptor.update_into(zeros, scratch)
    words = np.frombuffer(scratch, dtype=_WORD).reshape(acc.shape)
    if sign > 0:
        np.add(acc, words, out=acc)
    else:
        np.subtract(acc, words, out=acc)


def _add_round_masks(
    acc: npt.NDArray[np.uint64],
    my_name: str,
    my_key: KeyAgreementKey,
    peers: Mapping[str, bytes],
    round_id: bytes,
    purpose: str,
) -> None:
    """Add this node's masks for the round to ``acc`` in place (see :func:`mask_for_round`)."""
    me = _name_bytes(my_name)
    _check_round_id(round_id)
    if len(peers) < MIN_NODES - 1:
        raise TooFewNodes(
            f"masking needs at least {MIN_NODES - 1} peer; with none the matrix would be sent "
            "in the clear"
        )
    if len(peers) + 1 > MAX_NODES:
        raise MalformedInput(f"a masking round has at most {MAX_NODES} nodes, got {len(peers) + 1}")
    seeds: list[tuple[bytes, int]] = []
    for peer_name, peer_public in peers.items():
        peer = _name_bytes(peer_name, "peer name")
        if peer == me:
            raise MalformedInput(f"peer list names this node itself ({my_name!r})")
        check_x25519_public(peer_public)
        try:
            shared = my_key.exchange(peer_public)
        except ValueError as exc:  # low-order point: the shared secret would be all zeros
            raise MalformedInput(
                f"peer {peer_name!r} has an invalid X25519 key (low-order point)"
            ) from exc
        seed = pairwise_seed(shared, round_id, my_name, peer_name, purpose)
        seeds.append((seed, +1 if me < peer else -1))
    # Every check has passed before the first word of acc changes.
    zeros = bytes(acc.nbytes)
    scratch = bytearray(acc.nbytes)
    for seed, sign in seeds:
        _keystream_into(seed, zeros, scratch, acc, sign)


def mask_for_round(
    my_name: str,
    my_key: KeyAgreementKey,
    peers: Mapping[str, bytes],
    round_id: bytes,
    shape: Sequence[int],
    *,
    purpose: str = DEFAULT_PURPOSE,
) -> npt.NDArray[np.uint64]:
    """This node's total mask for a round: ``Σ_j ±mask_ij`` over every peer ``j``.

    ``peers`` maps each *other* node of the round to its registered X25519 public key (32 raw
    bytes). The sign is ``+`` when ``my_name`` sorts before the peer's name (UTF-8 bytes) and
    ``−`` after, so the masks of all nodes of the round sum to zero modulo 2^64.
    """
    total = np.zeros(_check_shape(shape), dtype=np.uint64)
    _add_round_masks(total, my_name, my_key, peers, round_id, purpose)
    return total


@dataclass(frozen=True, eq=False)
class MaskedEmbedding:
    """One node's masked embedding matrix for one round: what the coordinator receives.

    ``values`` is a read-only ``rows × dim`` ``uint64`` array (fixed point plus masks).
    """

    round_id: bytes
    node: str
    values: npt.NDArray[np.uint64]

    def __post_init__(self) -> None:
        _check_round_id(self.round_id)
        _name_bytes(self.node)
        values = self.values
        if not isinstance(values, np.ndarray) or values.dtype != np.uint64:
            raise MalformedInput("masked embedding values must be a uint64 numpy array")
        if values.ndim != 2:
            raise MalformedInput(f"masked embedding must be rows × dim, got {values.ndim} axes")
        _check_shape(values.shape)
        if values.flags.writeable:
            values = values.copy()
            values.flags.writeable = False
            object.__setattr__(self, "values", values)

    @property
    def shape(self) -> Shape:
        rows, dim = self.values.shape
        return int(rows), int(dim)

    def to_bytes(self) -> bytes:
        """The words as little-endian ``uint64``, row-major (for the wire)."""
        return self.values.astype(_WORD, copy=False).tobytes()

    @classmethod
    def from_bytes(
        cls, round_id: bytes, node: str, shape: Sequence[int], data: bytes
    ) -> MaskedEmbedding:
        """Rebuild from :meth:`to_bytes` output; refuses data whose length does not fit."""
        rows, dim = _check_shape(shape)
        if len(data) != rows * dim * _WORD.itemsize:
            raise MalformedInput(
                f"masked embedding from {node!r}: {len(data)} bytes do not hold "
                f"{rows} × {dim} uint64 words"
            )
        words = np.frombuffer(data, dtype=_WORD).astype(np.uint64, copy=False)
        return cls(round_id, node, words.reshape(rows, dim))


def mask_embedding(
    my_name: str,
    my_key: KeyAgreementKey,
    peers: Mapping[str, bytes],
    round_id: bytes,
    embedding: npt.ArrayLike,
    *,
    purpose: str = DEFAULT_PURPOSE,
) -> MaskedEmbedding:
    """Encode ``embedding`` (``rows × dim`` floats) in fixed point and add this round's mask.

    Use each (round id, purpose) for one matrix only: see the module notes.
    """
    arr = np.asarray(embedding)
    if arr.ndim != 2:
        raise MalformedInput(f"an embedding is a rows × dim matrix, got {arr.ndim} axes")
    _check_shape(arr.shape)
    words = encode_fixed_point(arr)
    _add_round_masks(words, my_name, my_key, peers, round_id, purpose)
    words.flags.writeable = False  # fresh array: MaskedEmbedding keeps it without a copy
    return MaskedEmbedding(round_id, my_name, words)


def aggregate(
    masked: Sequence[MaskedEmbedding],
    expected_nodes: Collection[str],
    *,
    expected_round_id: bytes | None = None,
    min_nodes: int = MIN_NODES,
) -> npt.NDArray[np.float64]:
    """Sum the masked matrices of one round modulo 2^64 and decode the float sum.

    Refuses (:class:`MalformedInput` or a subclass) unless the matrices come from exactly
    ``expected_nodes``, once each, all for the same round (``expected_round_id`` when given),
    all of one shape, and the round has at least ``min_nodes`` (``k``, default 2) and at most
    :data:`MAX_NODES` nodes. Anything else would either not cancel the masks (a meaningless
    sum) or fall short of property P2.
    """
    if min_nodes < MIN_NODES:
        raise MalformedInput(f"k must be at least {MIN_NODES}, got {min_nodes}")
    expected = frozenset(expected_nodes)
    if len(expected) < min_nodes:
        raise TooFewNodes(
            f"only {len(expected)} node(s) in the round; an aggregate needs at least "
            f"{min_nodes}, so no sum can be given without exposing one node"
        )
    if len(expected) > MAX_NODES:
        raise MalformedInput(f"a masking round has at most {MAX_NODES} nodes, got {len(expected)}")
    names = [m.node for m in masked]
    seen = set()
    for name in names:
        if name in seen:
            raise MalformedInput(f"node {name!r} sent more than one masked embedding")
        seen.add(name)
    got = frozenset(names)
    if got != expected:
        missing, unexpected = expected - got, got - expected
        parts = []
        if missing:
            parts.append(f"missing {sorted(missing)}")
        if unexpected:
            parts.append(f"unexpected {sorted(unexpected)}")
        raise RoundMismatch(
            "masked embeddings do not match the round's node set ("
            + ", ".join(parts)
            + "); masks cancel only over the full set: redo the round with a new attempt "
            "over the live nodes",
            missing=missing,
            unexpected=unexpected,
        )
    round_ids = {m.round_id for m in masked}
    if len(round_ids) != 1:
        raise MalformedInput("masked embeddings come from different rounds; masks would not cancel")
    if expected_round_id is not None and round_ids != {expected_round_id}:
        raise MalformedInput(
            "masked embeddings are for another round (or an abandoned attempt) than the one "
            "being aggregated"
        )
    shapes = {m.shape for m in masked}
    if len(shapes) != 1:
        raise MalformedInput(
            f"masked embeddings have different shapes {sorted(shapes)}; all must match"
        )
    total = np.zeros(masked[0].shape, dtype=np.uint64)
    for m in masked:
        np.add(total, m.values, out=total)
    return decode_fixed_point(total)


__all__ = [
    "DEFAULT_PURPOSE",
    "FRACTIONAL_BITS",
    "MAX_ABS_VALUE",
    "MAX_ELEMENTS",
    "MAX_NODES",
    "MIN_NODES",
    "ROUND_ID_BYTES",
    "SCALE",
    "MaskedEmbedding",
    "RoundMismatch",
    "Shape",
    "TooFewNodes",
    "aggregate",
    "decode_fixed_point",
    "derive_round_id",
    "encode_fixed_point",
    "expand_mask",
    "mask_embedding",
    "mask_for_round",
    "pairwise_seed",
]
