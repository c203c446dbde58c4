from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_core_ed25519_add,
    crypto_core_ed25519_from_uniform,
    crypto_core_ed25519_is_valid_point,
    crypto_sign_ed25519_pk_to_curve25519,
)

from accord.crypto.errors import MalformedInput
from accord.crypto.psi import (
    DOMAIN,
    LOW_ORDER_U,
    Identifier,
    PsiKey,
    blind,
    blind_batch,
    blind_points,
    check_blinded,
    distinct,
    hash_to_points,
    identifier_hash,
    intersect,
    normalize_email,
    normalize_phone,
    reblind,
    reblind_batch,
)

P = 2**255 - 19
A = 486662
TW = "886"
crypto_settings = settings(deadline=None, max_examples=60)
scalars = st.binary(min_size=32, max_size=32)


def on_curve(u: bytes) -> bool:
    """True when ``u`` is the u-coordinate of a point of Curve25519 itself, not of its twist."""
    x = int.from_bytes(u, "little") % P
    rhs = (x * x * x + A * x * x + x) % P
    return rhs == 0 or pow(rhs, (P - 1) // 2, P) == 1


def u_bytes(u: int) -> bytes:
    return (u % P).to_bytes(32, "little")


def x25519(scalar: bytes, u: bytes) -> bytes:
    private = X25519PrivateKey.from_private_bytes(scalar)
    return private.exchange(X25519PublicKey.from_public_bytes(u))


def key(seed: int) -> PsiKey:
    return PsiKey.generate(random.Random(seed).randbytes)


def phone_hash(text: str) -> bytes:
    return identifier_hash(Identifier.phone(text, country_code=TW))


# --- normalisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+886 912 345 678", "+886912345678"),
        ("0912-345-678", "+886912345678"),
        ("+886912345678", "+886912345678"),
        ("(09) 1234-5678", "+886912345678"),
        ("0912.345.678", "+886912345678"),
        ("  0912 345 678\n", "+886912345678"),
        ("+886 (0) 912 345 678", "+886912345678"),
        ("０９１２－３４５－６７８", "+886912345678"),  # full-width, as typed on a CJK keyboard
        ("0912–345–678", "+886912345678"),  # en dashes from a word processor
        ("(02) 2345-6789", "+886223456789"),  # a Taipei landline
        ("+44 20 7946 0958", "+442079460958"),  # international numbers keep their own code
        ("+1 (415) 555-2671", "+14155552671"),
    ],
)
def test_phone_normalisation(text: str, expected: str) -> None:
    assert normalize_phone(text, country_code=TW) == expected


def test_trunk_zero_takes_the_given_country_code() -> None:
    assert normalize_phone("020 7946 0958", country_code="44") == "+442079460958"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "+",
        "0",
        "012",  # too short
        "+1234567890123456",  # 16 digits: longer than E.164 allows
        "0912-345-678 ext 9",
        "0912-345-678#9",
        "tel:0912345678",
        "+0912345678",  # country codes never start with 0
        "00886912345678",  # international prefixes differ by country
        "912345678",  # neither '+' nor trunk 0: ambiguous
        "886912345678",
        "+886 912 345 678 +",
        "0912+345678",
        "٠٩١٢٣٤٥٦٧٨",  # Arabic-Indic digits are not folded to ASCII
        "0912345678²",
        "alice@example.com",
    ],
)
def test_not_a_phone_number_is_refused(text: str) -> None:
    with pytest.raises(MalformedInput):
        normalize_phone(text, country_code=TW)


@pytest.mark.parametrize("code", ["", "0", "0886", "8860", "+886", "88a", "８８６"])
def test_bad_country_code_is_refused(code: str) -> None:
    with pytest.raises(MalformedInput):
        normalize_phone("0912345678", country_code=code)


def test_error_messages_do_not_repeat_personal_data() -> None:
    with pytest.raises(MalformedInput) as phone_error:
        normalize_phone("0912-345-678 x9", country_code=TW)
    assert "345" not in str(phone_error.value)
    with pytest.raises(MalformedInput) as email_error:
        normalize_email("secret.person@@example.com")
    assert "secret" not in str(email_error.value)
    ident = Identifier.email("secret.person@example.com")
    assert "secret" not in repr(ident)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alice@example.com", "alice@example.com"),
        ("  Alice@Example.COM ", "alice@example.com"),
        ("CUSTOMER1.ABCDEF@EXAMPLE.COM", "customer1.abcdef@example.com"),
        ("bob+news@mail.example.co.uk", "bob+news@mail.example.co.uk"),
        ("B.O.B@gmail.com", "b.o.b@gmail.com"),  # no provider-specific rewriting
        ("Ce\u0301line@example.fr", "c\u00e9line@example.fr"),  # NFC
    ],
)
def test_email_normalisation(text: str, expected: str) -> None:
    assert normalize_email(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alice",
        "a@b@example.com",
        "@example.com",
        "alice@",
        "alice@example",
        "alice@example.",
        "alice@.example.com",
        "alice@exa..mple.com",
        "al ice@example.com",
        "alice@exam\tple.com",
        ".alice@example.com",
        "alice.@example.com",
        "al..ice@example.com",
        "<alice@example.com>",
        "alice@example.com,bob@example.com",
        "a" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
        "alice\x00@example.com",
    ],
)
def test_not_an_email_is_refused(text: str) -> None:
    with pytest.raises(MalformedInput):
        normalize_email(text)


def test_identifier_exists_only_normalised() -> None:
    assert Identifier.phone("0912-345-678", country_code=TW) == Identifier("phone", "+886912345678")
    assert Identifier.email(" Alice@Example.com") == Identifier("email", "alice@example.com")
    for kind, value in [
        ("phone", "0912345678"),
        ("phone", "+886 912 345 678"),
        ("email", "Alice@example.com"),
        ("email", " alice@example.com"),
        ("fax", "+886912345678"),
    ]:
        with pytest.raises(MalformedInput):
            Identifier(kind, value)  # type: ignore[arg-type]


def test_identifier_hash_is_domain_separated_sha512() -> None:
    ident = Identifier.phone("0912345678", country_code=TW)
    expected = hashlib.sha512(DOMAIN + b"phone\x00+886912345678").digest()
    assert identifier_hash(ident) == expected
    assert DOMAIN == b"accord-psi-v1\x00"
    assert (
        identifier_hash(Identifier.email("a@b.co"))
        == hashlib.sha512(b"accord-psi-v1\x00email\x00a@b.co").digest()
    )


@given(st.text(max_size=40), st.sampled_from(["886", "1", "44", "81"]))
def test_phone_normalisation_raises_only_malformed_and_is_idempotent(text: str, cc: str) -> None:
    try:
        out = normalize_phone(text, country_code=cc)
    except MalformedInput:
        return
    assert normalize_phone(out, country_code=cc) == out
    assert normalize_phone(out, country_code="886") == out  # E.164 no longer needs the default
    Identifier("phone", out)


@given(st.text(max_size=80))
def test_email_normalisation_raises_only_malformed_and_is_idempotent(text: str) -> None:
    try:
        out = normalize_email(text)
    except MalformedInput:
        return
    assert normalize_email(out) == out
    Identifier("email", out)


@given(
    st.from_regex(r"[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,10}(\.[a-z]{2,6}){1,2}", fullmatch=True),
    st.text(alphabet=" \t", max_size=3),
)
def test_email_case_and_padding_do_not_matter(address: str, pad: str) -> None:
    try:
        canonical = normalize_email(address)
    except MalformedInput:
        return  # e.g. a local part with '..'
    assert normalize_email(pad + address.upper() + pad) == canonical


@given(st.integers(min_value=0, max_value=10**8 - 1), st.integers(min_value=0, max_value=4))
def test_every_spelling_of_a_taiwan_mobile_normalises_equal(number: int, style: int) -> None:
    national = f"9{number:08d}"
    spellings = [
        f"+886 {national[:3]} {national[3:6]} {national[6:]}",
        f"0{national[:3]}-{national[3:6]}-{national[6:]}",
        f"+886{national}",
        f"(0{national[0]}) {national[1:5]}-{national[5:]}",
        f"0{national[:3]}.{national[3:6]}.{national[6:]}",
    ]
    assert normalize_phone(spellings[style], country_code=TW) == f"+886{national}"


# --- the map onto the curve ---------------------------------------------------------------------


def test_hash_to_points_lands_in_the_prime_order_subgroup_of_the_curve() -> None:
    rng = random.Random(1)
    hashes = [rng.randbytes(64) for _ in range(64)]
    points = hash_to_points(hashes)
    for digest, u in zip(hashes, points, strict=True):
        assert on_curve(u)
        assert int.from_bytes(u, "little") < P
        # The same construction done by libsodium alone, converted by libsodium.
        edwards = crypto_core_ed25519_add(
            crypto_core_ed25519_from_uniform(digest[:32]),
            crypto_core_ed25519_from_uniform(digest[32:]),
        )
        assert crypto_core_ed25519_is_valid_point(edwards)  # main subgroup, not small order
        assert crypto_sign_ed25519_pk_to_curve25519(edwards) == u
    assert hash_to_points(hashes[:1]) == points[:1]  # batching changes nothing
    assert hash_to_points([]) == []


def test_blinded_values_never_reveal_the_twist_bit() -> None:
    # Hashing straight to a u-coordinate would put about half of these on the twist, and the
    # peer could compute that bit of every identifier. After the map, all stay on the curve.
    ka, kb = key(1), key(2)
    hashes = [phone_hash(f"09{i:08d}") for i in range(100)]
    once = blind_batch(ka, hashes)
    twice = reblind_batch(kb, once)
    assert all(on_curve(u) for u in once + twice)


def test_hash_that_maps_to_the_identity_is_refused() -> None:
    # Elligator 2 sends 0 to a point of order 2, which clearing the cofactor makes the identity;
    # a SHA-512 output hits such an input with probability about 2^-250.
    with pytest.raises(MalformedInput, match="index 1 maps to the identity"):
        hash_to_points([phone_hash("0912345678"), bytes(64)])


@pytest.mark.parametrize("bad", [b"", bytes(63), bytes(65), "x" * 64])
def test_hash_to_points_refuses_wrong_length(bad: bytes) -> None:
    with pytest.raises(MalformedInput, match="index 1"):
        hash_to_points([bytes(64), bad])


# --- commutativity ------------------------------------------------------------------------------


@crypto_settings
@given(scalars, scalars, st.binary(min_size=32, max_size=32))
def test_x25519_commutes_for_any_u_coordinate(a: bytes, b: bytes, u: bytes) -> None:
    # Any 32 bytes at all: curve or twist, canonical or not, top bit set or not.
    try:
        ab = x25519(a, x25519(b, u))
    except ValueError:  # a low-order u: the all-zero result is refused on both orders
        with pytest.raises(ValueError):
            x25519(b, x25519(a, u))
        return
    assert ab == x25519(b, x25519(a, u))


@crypto_settings
@given(scalars, scalars)
def test_x25519_commutes_on_twist_points(a: bytes, b: bytes) -> None:
    u = u_bytes(2)  # 2^3 + A·4 + 2 is not a square: u = 2 lies on the twist
    assert not on_curve(u)
    assert x25519(a, x25519(b, u)) == x25519(b, x25519(a, u))


@crypto_settings
@given(scalars, scalars, st.binary(max_size=64))
def test_blinding_commutes(a: bytes, b: bytes, data: bytes) -> None:
    ka, kb = PsiKey(a), PsiKey(b)
    digest = hashlib.sha512(data).digest()
    assert reblind(kb, blind(ka, digest)) == reblind(ka, blind(kb, digest))


def test_batches_match_single_items() -> None:
    ka, kb = key(3), key(4)
    hashes = [phone_hash(f"09{i:08d}") for i in range(20)]
    once = blind_batch(ka, hashes)
    assert once == [blind(ka, h) for h in hashes]
    assert once == blind_points(ka, hash_to_points(hashes))
    assert reblind_batch(kb, once) == [reblind(kb, v) for v in once]


# --- keys and unlinkability ---------------------------------------------------------------------


def test_runs_are_unlinkable() -> None:
    digest = phone_hash("0912-345-678")
    run1, run2 = key(10), key(11)
    peer1, peer2 = key(12), key(13)
    assert blind(run1, digest) != blind(run2, digest)
    assert reblind(peer1, blind(run1, digest)) != reblind(peer2, blind(run2, digest))
    # Only a reused key links runs; that is why a key is for one run.
    assert blind(run1, digest) == blind(key(10), digest)


def test_key_comes_from_the_given_source() -> None:
    draws: list[int] = []

    def source(n: int) -> bytes:
        draws.append(n)
        return bytes(range(n))

    psi_key = PsiKey.generate(source)
    assert draws == [32]
    assert psi_key.secret == bytes(range(32))
    assert bytes(range(32)).hex() not in repr(psi_key)
    with pytest.raises(MalformedInput):
        PsiKey.generate(lambda n: bytes(n - 1))
    with pytest.raises(MalformedInput):
        PsiKey(bytes(33))


# --- hostile values from a peer -----------------------------------------------------------------


@pytest.fixture
def honest() -> list[bytes]:
    return blind_batch(key(20), [phone_hash(f"09{i:08d}") for i in range(4)])


@pytest.mark.parametrize("bad", [b"", bytes(31), bytes(33), "0" * 32, bytearray(32)])
def test_wrong_length_or_type_is_refused(honest: list[bytes], bad: bytes) -> None:
    with pytest.raises(MalformedInput, match="index 2"):
        reblind_batch(key(21), [*honest[:2], bad, *honest[2:]])


def test_known_low_order_points_are_refused(honest: list[bytes]) -> None:
    assert {u_bytes(0), u_bytes(1), u_bytes(P - 1)} < LOW_ORDER_U
    assert len(LOW_ORDER_U) == 5
    for low in sorted(LOW_ORDER_U):
        # They really are of low order: cryptography itself refuses the all-zero result.
        with pytest.raises(ValueError):
            x25519(key(22).secret, low)
        with pytest.raises(MalformedInput, match=r"index 1: invalid point"):
            reblind_batch(key(22), [honest[0], low])
        with pytest.raises(MalformedInput, match=r"index 0: invalid point"):
            blind_points(key(22), [low])  # no pre-check here: the library's refusal is converted


def test_non_canonical_encodings_are_refused(honest: list[bytes]) -> None:
    top_bit = bytearray(honest[0])
    top_bit[31] |= 0x80
    plus_p = (int.from_bytes(u_bytes(9), "little") + P).to_bytes(32, "little")  # 9 + p < 2^255
    for bad in [bytes(top_bit), plus_p, u_bytes(P - 1)[:31] + b"\xff", b"\xff" * 32]:
        with pytest.raises(MalformedInput, match="index 1"):
            reblind_batch(key(23), [honest[1], bad])
    # p and p + 1 are 0 and 1 in disguise.
    for low in [P, P + 1]:
        with pytest.raises(MalformedInput):
            check_blinded([low.to_bytes(32, "little")])


def test_duplicates_are_refused_with_both_indices(honest: list[bytes]) -> None:
    with pytest.raises(MalformedInput, match="index 3 repeats the one at index 1"):
        reblind_batch(key(24), [honest[0], honest[1], honest[2], honest[1]])
    with pytest.raises(MalformedInput, match="index 2 repeats"):
        intersect([honest[0], honest[1], honest[0]], honest)
    with pytest.raises(MalformedInput, match="index 1 repeats"):
        intersect(honest, [honest[3], honest[3]])


def test_one_point_in_two_encodings_is_caught_after_multiplying(honest: list[bytes]) -> None:
    # Adding the point of order 2 turns u into 1/u: a different, canonical, valid-looking value
    # that the clamped multiplication maps to the same result.
    u = int.from_bytes(honest[0], "little")
    alias = u_bytes(pow(u, -1, P))
    check_blinded([honest[0], alias])
    assert x25519(key(25).secret, alias) == x25519(key(25).secret, honest[0])
    with pytest.raises(MalformedInput, match="index 1 repeats the one at index 0"):
        reblind_batch(key(25), [honest[0], alias])


@crypto_settings
@given(st.lists(st.binary(min_size=0, max_size=40), max_size=6))
def test_arbitrary_peer_values_raise_only_malformed(values: list[bytes]) -> None:
    try:
        out = reblind_batch(key(26), values)
    except MalformedInput:
        return
    assert len(out) == len(values)


# --- the whole protocol -------------------------------------------------------------------------


def spell(rng: random.Random, e164: str) -> str:
    """One of the ways a channel may store a Taiwanese mobile number."""
    n = e164[4:]
    return rng.choice(
        [
            e164,
            f"+886 {n[:3]} {n[3:6]} {n[6:]}",
            f"0{n[:3]}-{n[3:6]}-{n[6:]}",
            f"(0{n[0]}) {n[1:5]}-{n[5:]}",
        ]
    )


def run_psi(mine_raw: list[str], theirs_raw: list[str], rng: random.Random) -> list[int]:
    """Two parties, each with its own key; returns the positions of ``mine_raw`` found."""
    ka, kb = PsiKey.generate(rng.randbytes), PsiKey.generate(rng.randbytes)
    mine = distinct(phone_hash(text) for text in mine_raw)
    theirs = distinct(phone_hash(text) for text in theirs_raw)
    sent_by_a = blind_batch(ka, list(mine.values))
    sent_by_b = blind_batch(kb, list(theirs.values))
    mine_twice = reblind_batch(kb, sent_by_a)  # B returns A's values, blinded again, in order
    theirs_twice = reblind_batch(ka, sent_by_b)  # A blinds B's values again itself
    return mine.originals(intersect(mine_twice, theirs_twice))


@pytest.mark.parametrize("overlap", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_intersection_is_exact(overlap: float, seed: int) -> None:
    rng = random.Random(seed)
    n = 150
    universe = [f"+8869{x:08d}" for x in rng.sample(range(10**8), 3 * n)]
    shared = int(n * overlap)
    mine_people = universe[:n]
    theirs_people = universe[:shared] + universe[n : 2 * n - shared]
    # Repeats, each in its own spelling, on both sides.
    mine_raw = [spell(rng, p) for p in mine_people + rng.sample(mine_people, 20)]
    theirs_raw = [spell(rng, p) for p in theirs_people + rng.sample(theirs_people, 20)]
    rng.shuffle(mine_raw)
    rng.shuffle(theirs_raw)

    found = run_psi(mine_raw, theirs_raw, rng)

    theirs_set = {normalize_phone(t, country_code=TW) for t in theirs_raw}
    expected = [
        i for i, t in enumerate(mine_raw) if normalize_phone(t, country_code=TW) in theirs_set
    ]
    assert found == expected
    assert len({normalize_phone(mine_raw[i], country_code=TW) for i in found}) == shared


def test_spellings_that_normalise_equal_match() -> None:
    found = run_psi(
        ["+886 912 345 678", "0922-000-111", "0912-345-678"],
        ["0912-345-678", "+886 933 000 000"],
        random.Random(5),
    )
    assert found == [0, 2]


def test_phone_and_email_with_one_value_never_match() -> None:
    phone = identifier_hash(Identifier.phone("0912345678", country_code=TW))
    email = identifier_hash(Identifier.email("0912345678@example.com"))
    assert phone != email
    ka, kb = key(30), key(31)
    assert (
        intersect(
            reblind_batch(kb, blind_batch(ka, [phone])), reblind_batch(ka, blind_batch(kb, [email]))
        )
        == []
    )


def test_distinct_maps_back_to_every_original_position() -> None:
    d = distinct([b"a", b"b", b"a", b"c", b"b"])
    assert d.values == (b"a", b"b", b"c")
    assert d.slots == (0, 1, 0, 2, 1)
    assert d.originals([1]) == [1, 4]
    assert d.originals([0, 2]) == [0, 2, 3]
    assert d.originals([]) == []
