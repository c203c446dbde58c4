"""Pairwise additive masking: the sum is right, one node's matrix is uniform noise (P2)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from accord.crypto.errors import MalformedInput
from accord.crypto.keys import KeyAgreementKey
from accord.crypto.masking import (
    FRACTIONAL_BITS,
    MAX_ABS_VALUE,
    MAX_NODES,
    ROUND_ID_BYTES,
    MaskedEmbedding,
    RoundMismatch,
    TooFewNodes,
    aggregate,
    decode_fixed_point,
    derive_round_id,
    encode_fixed_point,
    expand_mask,
    mask_embedding,
    mask_for_round,
    pairwise_seed,
)

U64 = npt.NDArray[np.uint64]
RUN = b"run-0001"
RESOLUTION = 2.0**-FRACTIONAL_BITS


def _key(name: str) -> KeyAgreementKey:
    return KeyAgreementKey(hashlib.sha256(b"test key " + name.encode()).digest())


def _peers(me: str, names: Sequence[str]) -> dict[str, bytes]:
    return {n: _key(n).public_key for n in names if n != me}


def _mask_all(
    names: Sequence[str], embeddings: Sequence[npt.ArrayLike], round_id: bytes
) -> list[MaskedEmbedding]:
    return [
        mask_embedding(n, _key(n), _peers(n, names), round_id, e)
        for n, e in zip(names, embeddings, strict=True)
    ]


def _ring_sum(arrays: Sequence[U64]) -> U64:
    total = np.zeros(arrays[0].shape, dtype=np.uint64)
    for a in arrays:
        total += a
    return total


# --- statistics without scipy -------------------------------------------------------------

# Thresholds at a false-alarm rate of 1e-6 per test. Inputs are deterministic (fixed keys and
# round ids), so each test either always passes or always fails: no flakiness.
_Z_1E6 = 4.753424  # upper 1e-6 quantile of N(0, 1)


def _chi2_critical(df: int, z: float = _Z_1E6) -> float:
    """Wilson–Hilferty approximation of the upper chi-square quantile."""
    c = 2.0 / (9.0 * df)
    return float(df * (1.0 - c + z * math.sqrt(c)) ** 3)


def _chi2_uniform(values: npt.NDArray[np.integer], buckets: int) -> float:
    counts = np.bincount(values.astype(np.int64).ravel(), minlength=buckets)
    expected = values.size / buckets
    return float(((counts - expected) ** 2 / expected).sum())


def _byte_lanes_uniform(words: U64) -> bool:
    """Chi-square of each of the 8 byte lanes of the words against uniform over 0..255."""
    lanes = words.ravel().astype("<u8").view(np.uint8).reshape(-1, 8)
    critical = _chi2_critical(255)
    return all(_chi2_uniform(lanes[:, i], 256) < critical for i in range(8))


def _ks_uniform(words: U64, alpha: float = 1e-6) -> bool:
    """Kolmogorov–Smirnov of words / 2^64 against U(0, 1) (asymptotic critical value)."""
    u = np.sort(words.ravel().astype(np.float64) / 2.0**64)
    n = u.size
    i = np.arange(1, n + 1)
    d = max(float((i / n - u).max()), float((u - (i - 1) / n).max()))
    return d < math.sqrt(-math.log(alpha / 2) / (2 * n))


# --- fixed point --------------------------------------------------------------------------


@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=12),
        elements=st.floats(-1e6, 1e6, width=32),
    )
)
def test_encode_decode_round_trip(values: npt.NDArray[np.floating]) -> None:
    words = encode_fixed_point(values)
    assert words.dtype == np.uint64
    assert words.shape == values.shape
    np.testing.assert_allclose(decode_fixed_point(words), values, rtol=0, atol=RESOLUTION / 2)


def test_encoding_is_twos_complement_with_documented_scale() -> None:
    words = encode_fixed_point(np.array([[0.0, 1.0, -1.0, 0.5, -(2.0**-20)]]))
    assert words.tolist() == [[0, 1 << 20, 2**64 - (1 << 20), 1 << 19, 2**64 - 1]]


def test_bound_is_accepted_and_sums_over_max_nodes_do_not_wrap() -> None:
    top = np.full((1, 2), MAX_ABS_VALUE)
    top[0, 1] = -MAX_ABS_VALUE
    total = _ring_sum([encode_fixed_point(top) for _ in range(MAX_NODES)])
    np.testing.assert_array_equal(decode_fixed_point(total), MAX_NODES * top)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (MAX_ABS_VALUE * 1.0001, "exceeds the fixed-point bound"),
        (-MAX_ABS_VALUE * 2, "exceeds the fixed-point bound"),
        (float("nan"), "not finite"),
        (float("inf"), "not finite"),
        (float("-inf"), "not finite"),
    ],
)
def test_out_of_range_values_are_refused_with_position(value: float, words: str) -> None:
    arr = np.zeros((3, 4), dtype=np.float64)
    arr[2, 1] = value
    with pytest.raises(MalformedInput, match=words) as err:
        encode_fixed_point(arr)
    assert "(2, 1)" in str(err.value)
    with pytest.raises(MalformedInput):
        mask_embedding("a", _key("a"), _peers("a", "ab"), bytes(32), arr)


def test_overflow_message_says_what_to_do_without_the_value() -> None:
    with pytest.raises(MalformedInput, match=r"2\^38.*clip or rescale") as err:
        encode_fixed_point(np.array([[0.0, 987654321098.0]]))
    assert "987" not in str(err.value)  # the position, never the (personal-data derived) value


@pytest.mark.parametrize("values", [np.array([["x"]]), np.array([[True]]), np.array([[1j]])])
def test_non_real_values_are_refused(values: npt.NDArray[np.generic]) -> None:
    with pytest.raises(MalformedInput, match="real numbers"):
        encode_fixed_point(values)


# --- the sum ------------------------------------------------------------------------------


@st.composite
def _rounds(draw: st.DrawFn) -> tuple[list[str], list[npt.NDArray[np.floating]]]:
    names = draw(
        st.lists(
            st.text(st.characters(codec="utf-8"), min_size=1, max_size=8),
            min_size=2,
            max_size=5,
            unique=True,
        )
    )
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=16))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    elements = st.floats(-1e4, 1e4, width=32) if dtype == np.float32 else st.floats(-1e4, 1e4)
    embeddings = [draw(hnp.arrays(dtype, shape, elements=elements)) for _ in names]
    return names, embeddings


@settings(deadline=None)
@given(_rounds(), st.binary(min_size=1, max_size=16), st.integers(0, 2**64 - 1))
def test_aggregate_equals_plain_sum(
    case: tuple[list[str], list[npt.NDArray[np.floating]]], run: bytes, round_no: int
) -> None:
    names, embeddings = case
    rid = derive_round_id(run, round_no, 0, names)
    masked = _mask_all(names, embeddings, rid)
    got = aggregate(masked, names, expected_round_id=rid)
    want = np.sum([e.astype(np.float64) for e in embeddings], axis=0)
    np.testing.assert_allclose(got, want, rtol=0, atol=len(names) * RESOLUTION)


@pytest.mark.parametrize("n", [2, 3, 5, MAX_NODES])
def test_masks_cancel_exactly_over_the_round(n: int) -> None:
    names = [f"node{i:02d}" for i in range(n)]
    rid = derive_round_id(RUN, 7, 0, names)
    masks = [mask_for_round(m, _key(m), _peers(m, names), rid, (5, 3)) for m in names]
    assert not np.any(_ring_sum(masks))
    assert all(np.count_nonzero(m) == 15 for m in masks)


def test_mask_embedding_is_encoding_plus_round_mask() -> None:
    names = ["label", "pay", "shop"]
    rid = derive_round_id(RUN, 1, 0, names)
    emb = np.random.default_rng(1).normal(size=(6, 4))
    masked = mask_embedding("pay", _key("pay"), _peers("pay", names), rid, emb)
    mask = mask_for_round("pay", _key("pay"), _peers("pay", names), rid, (6, 4))
    np.testing.assert_array_equal(masked.values, encode_fixed_point(emb) + mask)
    assert masked.node == "pay"
    assert masked.round_id == rid
    assert masked.shape == (6, 4)


# --- one node's matrix looks uniform ------------------------------------------------------

_BIG = (4096, 16)  # 65,536 words: 256 expected per bucket of a byte lane


def _embedding(kind: str) -> npt.NDArray[np.floating]:
    if kind == "zeros":
        return np.zeros(_BIG, dtype=np.float32)
    if kind == "constant":
        return np.full(_BIG, 3.25)
    return (np.random.default_rng(5).normal(size=_BIG) * 10).astype(np.float32)


@pytest.mark.parametrize("kind", ["zeros", "constant", "real"])
@pytest.mark.parametrize(
    ("me", "names"),
    [
        ("a", ["a", "b"]),  # only adds masks
        ("b", ["a", "b"]),  # only subtracts
        ("b", ["a", "b", "c"]),  # one of each
        ("c", ["a", "b", "c", "d"]),
    ],
)
def test_single_masked_matrix_is_uniform_on_the_ring(kind: str, me: str, names: list[str]) -> None:
    rid = derive_round_id(RUN, 3, 0, names)
    words = mask_embedding(me, _key(me), _peers(me, names), rid, _embedding(kind)).values
    assert _byte_lanes_uniform(words)
    assert _ks_uniform(words)
    # Top byte bucketed on its own (what an encoding of small values would betray first).
    assert _chi2_uniform(words.ravel() >> np.uint64(56), 256) < _chi2_critical(255)


def test_uniformity_checks_catch_unmasked_and_half_masked_matrices() -> None:
    """The statistics above have power: they reject what a broken masker would send."""
    names = ["a", "b", "c"]
    rid = derive_round_id(RUN, 3, 0, names)
    plain = encode_fixed_point(_embedding("real"))
    assert not _byte_lanes_uniform(plain)
    assert not _ks_uniform(plain)
    mask = mask_for_round("a", _key("a"), _peers("a", names), rid, _BIG)
    low_half = plain + (mask & np.uint64(0xFFFF_FFFF))
    assert not _byte_lanes_uniform(low_half)
    assert not _ks_uniform(low_half)
    high_only = plain + (mask & np.uint64(0xFFFF_FFFF_0000_0000))
    assert not _byte_lanes_uniform(high_only)  # the low lanes still carry the embedding


# --- seeds: shared by a pair, fresh per pair, round and purpose ---------------------------


def test_both_sides_of_a_pair_derive_the_same_seed() -> None:
    a, b = _key("a"), _key("b")
    rid = derive_round_id(RUN, 0, 0, ["a", "b"])
    seed_a = pairwise_seed(a.exchange(b.public_key), rid, "a", "b")
    seed_b = pairwise_seed(b.exchange(a.public_key), rid, "b", "a")
    assert seed_a == seed_b
    assert len(seed_a) == 32


def test_seed_follows_the_documented_derivation() -> None:
    shared, rid = bytes(range(32)), bytes(range(100, 132))
    info = b"accord-mask-v1\x00" + b"\x00\x03pay" + b"\x00\x04shop" + b"\x00\x09embedding"
    want = HKDF(algorithm=hashes.SHA256(), length=32, salt=rid, info=info).derive(shared)
    assert pairwise_seed(shared, rid, "shop", "pay") == want


def test_seeds_differ_across_pairs_rounds_and_purposes() -> None:
    names = ["a", "b", "c"]
    r0 = derive_round_id(RUN, 0, 0, names)
    r1 = derive_round_id(RUN, 1, 0, names)
    a = _key("a")
    seeds = {
        pairwise_seed(a.exchange(_key("b").public_key), r0, "a", "b"),
        pairwise_seed(a.exchange(_key("c").public_key), r0, "a", "c"),
        pairwise_seed(a.exchange(_key("b").public_key), r1, "a", "b"),
        pairwise_seed(a.exchange(_key("b").public_key), r0, "a", "b", "gradient"),
        # The same secret under other names (info binds the names, length-prefixed).
        pairwise_seed(a.exchange(_key("b").public_key), r0, "a", "bx"),
        pairwise_seed(a.exchange(_key("b").public_key), r0, "ab", "x"),
    }
    assert len(seeds) == 6


def test_masks_differ_across_rounds_and_purposes() -> None:
    names = ["a", "b", "c"]
    peers = _peers("a", names)

    def mask(round_no: int, attempt: int, purpose: str = "embedding") -> U64:
        rid = derive_round_id(RUN, round_no, attempt, names)
        return mask_for_round("a", _key("a"), peers, rid, (64, 8), purpose=purpose)

    masks = [mask(0, 0), mask(1, 0), mask(0, 1), mask(0, 0, "other")]
    np.testing.assert_array_equal(mask(0, 0), masks[0])  # deterministic
    for i in range(len(masks)):
        for j in range(i):
            # Independent uniform words: essentially no position agrees.
            assert np.count_nonzero(masks[i] == masks[j]) == 0


def test_pair_masks_differ_and_keystream_is_positional() -> None:
    rid = derive_round_id(RUN, 0, 0, ["a", "b", "c"])
    a = _key("a")
    ab = expand_mask(pairwise_seed(a.exchange(_key("b").public_key), rid, "a", "b"), (32, 4))
    ac = expand_mask(pairwise_seed(a.exchange(_key("c").public_key), rid, "a", "c"), (32, 4))
    assert np.count_nonzero(ab == ac) == 0
    seed = bytes(32)
    # Same seed, other shape: the same stream laid out row-major (the seed must not be reused).
    np.testing.assert_array_equal(
        expand_mask(seed, (8, 4)).ravel(), expand_mask(seed, (4, 8)).ravel()
    )


# --- a node missing -----------------------------------------------------------------------


def test_missing_node_does_not_give_the_sum_and_is_refused() -> None:
    names = ["label", "pay", "shop"]
    rid = derive_round_id(RUN, 9, 0, names)
    rng = np.random.default_rng(2)
    embeddings = [rng.normal(size=(50, 4)) for _ in names]
    masked = _mask_all(names, embeddings, rid)
    partial = decode_fixed_point(_ring_sum([m.values for m in masked[:2]]))
    want = embeddings[0] + embeddings[1]
    # Leftover masks of the missing pairs: the "sum" is noise of magnitude ~2^43.
    assert np.median(np.abs(partial - want)) > 1e6
    with pytest.raises(RoundMismatch, match=r"missing \['shop'\].*redo the round") as err:
        aggregate(masked[:2], names)
    assert err.value.missing == {"shop"}
    assert err.value.unexpected == frozenset()
    # Claiming the smaller set does not help: its round id is another one.
    with pytest.raises(MalformedInput, match="another round"):
        aggregate(masked[:2], names[:2], expected_round_id=derive_round_id(RUN, 9, 0, names[:2]))


def test_dropped_node_is_recovered_by_redoing_the_round_over_the_live_set() -> None:
    names = ["label", "pay", "shop"]
    rng = np.random.default_rng(3)
    embeddings = [rng.normal(size=(20, 8)) for _ in names]
    first = derive_round_id(RUN, 4, 0, names)
    stale = _mask_all(names[:2], embeddings[:2], first)  # "shop" never answered
    live = names[:2]
    redo = derive_round_id(RUN, 4, 1, live)
    assert redo != first
    fresh = _mask_all(live, embeddings[:2], redo)
    got = aggregate(fresh, live, expected_round_id=redo)
    np.testing.assert_allclose(got, embeddings[0] + embeddings[1], rtol=0, atol=2 * RESOLUTION)
    # Messages of the abandoned attempt are refused, alone or mixed with the redo.
    with pytest.raises(MalformedInput):
        aggregate(stale, live, expected_round_id=redo)
    with pytest.raises(MalformedInput, match="different rounds"):
        aggregate([stale[0], fresh[1]], live)


def test_round_ids_bind_run_round_attempt_and_node_set() -> None:
    base = derive_round_id(RUN, 1, 0, ["a", "b", "c"])
    assert len(base) == ROUND_ID_BYTES
    assert derive_round_id(RUN, 1, 0, ["c", "a", "b"]) == base  # order does not matter
    others = {
        derive_round_id(b"run-0002", 1, 0, ["a", "b", "c"]),
        derive_round_id(RUN, 2, 0, ["a", "b", "c"]),
        derive_round_id(RUN, 1, 1, ["a", "b", "c"]),
        derive_round_id(RUN, 1, 0, ["a", "b"]),
        derive_round_id(RUN, 1, 0, ["a", "bc"]),
        derive_round_id(RUN, 1, 0, ["ab", "c"]),
    }
    assert base not in others
    assert len(others) == 6


@pytest.mark.parametrize(
    ("run", "round_no", "attempt", "nodes"),
    [
        (b"", 0, 0, ["a", "b"]),
        (RUN, -1, 0, ["a", "b"]),
        (RUN, 2**64, 0, ["a", "b"]),
        (RUN, 0, -1, ["a", "b"]),
        (RUN, 0, 2**32, ["a", "b"]),
        (RUN, 0, 0, ["a"]),
        (RUN, 0, 0, ["a", "a"]),
        (RUN, 0, 0, ["a", ""]),
        (RUN, 0, 0, [f"n{i}" for i in range(MAX_NODES + 1)]),
    ],
)
def test_bad_round_parameters_are_refused(
    run: bytes, round_no: int, attempt: int, nodes: list[str]
) -> None:
    with pytest.raises(MalformedInput):
        derive_round_id(run, round_no, attempt, nodes)


# --- refusals -----------------------------------------------------------------------------


def _three() -> tuple[list[str], bytes, list[MaskedEmbedding]]:
    names = ["a", "b", "c"]
    rid = derive_round_id(RUN, 0, 0, names)
    return names, rid, _mask_all(names, [np.ones((4, 2))] * 3, rid)


def test_aggregate_refuses_duplicates_strangers_and_wrong_rounds() -> None:
    names, rid, masked = _three()
    with pytest.raises(MalformedInput, match="more than one"):
        aggregate([*masked, masked[0]], names)
    stranger = MaskedEmbedding(rid, "d", masked[0].values)
    with pytest.raises(RoundMismatch, match=r"unexpected \['d'\]") as err:
        aggregate([*masked, stranger], names)
    assert err.value.unexpected == {"d"}
    with pytest.raises(MalformedInput, match="another round"):
        aggregate(masked, names, expected_round_id=derive_round_id(RUN, 1, 0, names))
    other = MaskedEmbedding(bytes(32), "c", masked[2].values)
    with pytest.raises(MalformedInput, match="different rounds"):
        aggregate([masked[0], masked[1], other], names)


def test_aggregate_refuses_shape_mismatch() -> None:
    names, rid, masked = _three()
    wide = mask_embedding("c", _key("c"), _peers("c", names), rid, np.ones((4, 3)))
    with pytest.raises(MalformedInput, match="different shapes"):
        aggregate([masked[0], masked[1], wide], names)


def test_aggregate_refuses_fewer_than_k_nodes() -> None:
    names, _rid, masked = _three()
    with pytest.raises(TooFewNodes, match="at least 2"):
        aggregate(masked[:1], ["a"])
    with pytest.raises(TooFewNodes, match="at least 4"):
        aggregate(masked, names, min_nodes=4)
    with pytest.raises(MalformedInput, match="k must be at least 2"):
        aggregate(masked[:1], ["a"], min_nodes=1)
    np.testing.assert_allclose(aggregate(masked, names, min_nodes=3), np.full((4, 2), 3.0))


def test_masking_refuses_to_send_in_the_clear_or_to_itself() -> None:
    rid = bytes(32)
    with pytest.raises(TooFewNodes, match="in the clear"):
        mask_embedding("a", _key("a"), {}, rid, np.ones((2, 2)))
    with pytest.raises(MalformedInput, match="itself"):
        mask_for_round("a", _key("a"), {"a": _key("a").public_key}, rid, (2, 2))
    too_many = {f"n{i}": _key(f"n{i}").public_key for i in range(MAX_NODES)}
    with pytest.raises(MalformedInput, match="at most"):
        mask_for_round("a", _key("a"), too_many, rid, (2, 2))


@pytest.mark.parametrize(
    "peer_key",
    [bytes(32), (1).to_bytes(32, "little"), bytes(31)],  # low-order points, wrong length
)
def test_masking_refuses_bad_peer_keys(peer_key: bytes) -> None:
    with pytest.raises(MalformedInput, match="X25519"):
        mask_for_round("a", _key("a"), {"b": peer_key}, bytes(32), (2, 2))


@pytest.mark.parametrize("rid", [b"", b"round-1", bytes(33)])
def test_masking_refuses_round_ids_of_the_wrong_size(rid: bytes) -> None:
    with pytest.raises(MalformedInput, match="derive_round_id"):
        mask_for_round("a", _key("a"), _peers("a", "ab"), rid, (2, 2))


@pytest.mark.parametrize("shape", [(-1, 2), (2,), (2, 2, 2), (1 << 14, 1 << 13), (2.0, 2)])
def test_bad_shapes_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(MalformedInput):
        mask_for_round("a", _key("a"), _peers("a", "ab"), bytes(32), shape)


def test_embedding_must_be_a_matrix() -> None:
    with pytest.raises(MalformedInput, match="rows × dim"):
        mask_embedding("a", _key("a"), _peers("a", "ab"), bytes(32), np.ones(3))


def test_bad_purpose_is_refused() -> None:
    with pytest.raises(MalformedInput, match="purpose"):
        pairwise_seed(bytes(32), bytes(32), "a", "b", "has space")


# --- the record on the wire ---------------------------------------------------------------


def test_masked_embedding_wire_round_trip_and_immutability() -> None:
    _names, rid, masked = _three()
    m = masked[1]
    back = MaskedEmbedding.from_bytes(rid, "b", (4, 2), m.to_bytes())
    np.testing.assert_array_equal(back.values, m.values)
    assert back.shape == (4, 2)
    with pytest.raises(ValueError, match="read-only"):
        m.values[0, 0] = 1
    source = np.zeros((1, 1), dtype=np.uint64)
    kept = MaskedEmbedding(rid, "a", source)
    source[0, 0] = 7  # the record took a copy
    assert kept.values[0, 0] == 0


@pytest.mark.parametrize(
    ("shape", "data", "words"),
    [
        ((4, 2), bytes(63), "do not hold"),
        ((4, 2), bytes(72), "do not hold"),
        ((-4, 2), bytes(0), "non-negative"),
    ],
)
def test_masked_embedding_refuses_bad_wire_data(
    shape: tuple[int, int], data: bytes, words: str
) -> None:
    with pytest.raises(MalformedInput, match=words):
        MaskedEmbedding.from_bytes(bytes(32), "a", shape, data)


def test_masked_embedding_refuses_bad_fields() -> None:
    with pytest.raises(MalformedInput, match="uint64"):
        MaskedEmbedding(bytes(32), "a", np.zeros((1, 1), dtype=np.int64))
    with pytest.raises(MalformedInput, match="rows × dim"):
        MaskedEmbedding(bytes(32), "a", np.zeros(3, dtype=np.uint64))
    with pytest.raises(MalformedInput, match="round id"):
        MaskedEmbedding(b"r", "a", np.zeros((1, 1), dtype=np.uint64))
    with pytest.raises(MalformedInput, match="node name"):
        MaskedEmbedding(bytes(32), "", np.zeros((1, 1), dtype=np.uint64))
