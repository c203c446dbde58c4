"""Private set intersection by commutative blinding (ECDH-PSI) over Curve25519.

Two parties, each holding a set of customer identifiers, learn which identifiers they share and
nothing else about each other's customers. Each party draws a fresh secret scalar per run
(:class:`PsiKey`). For an identifier ``x``, with ``H`` a hash onto the curve:

1. each party sends ``a·H(x)`` for its own identifiers (:func:`blind_batch`);
2. each party multiplies what it received by its own scalar, ``b·(a·H(x))``
   (:func:`reblind_batch`), and sends that back;
3. since ``a·(b·P) == b·(a·P)``, the doubly-blinded values of a shared identifier are equal on
   both sides, and :func:`intersect` finds them by set lookup.

A blinded value reveals nothing about ``x`` to anyone who does not hold the scalar (decisional
Diffie-Hellman); the same identifier blinded under two runs' keys gives unrelated values, so runs
cannot be linked. Whoever sees a doubly-blinded value can only test it for equality.

**Group and map.** The multiplication is X25519 from ``cryptography`` (27–33 µs here). X25519
works on Montgomery u-coordinates, and *every* 32-byte string is a u-coordinate either of the
curve or of its quadratic twist, and a multiplication never leaves the side it started on.
Hashing straight to a u-coordinate would therefore put half the identifiers on the twist, and a
peer can tell which side a received value is on (one Legendre symbol): it would learn one bit of
``H(x)`` for every identifier, a fixed function of the identifier the same in every run. So the
map onto the curve is instead the shape of RFC 9380's ``hash_to_curve`` (a random oracle into the
group): the 64-byte identifier hash is split into two halves, each goes through libsodium's
Elligator 2 map (``crypto_core_ed25519_from_uniform``, which also clears the cofactor), the two
points are added, and the Edwards point is converted to its Montgomery u-coordinate
``(1 + y) / (1 - y)``. The result lies in the prime-order subgroup of the curve proper. This costs
about 60 µs per identifier here (two maps at 21 µs, an addition at 15 µs that decodes both points;
one map alone would be a non-uniform ``encode_to_curve``, which RFC 9497-style protocols avoid),
but it depends only on the identifier, never on the run: a node may compute
:func:`hash_to_points` once and keep the results (as private as the identifiers they come from)
and then spend one multiplication per run in :func:`blind_points`.

**Why X25519 is safe to use here.** X25519 clamps every scalar to a multiple of 8 below
``2^255``; clamped scalars compose as plain integers, so blinding commutes. Multiplying by a
multiple of 8 clears the cofactor, so a peer that adds a small-order component to a value learns
nothing from the result; a peer that sends a point of the twist gets a multiple of it in the
twist's prime-order subgroup (Curve25519 is twist-secure), which matches nothing. A low-order
input gives the all-zero output, which ``cryptography`` refuses; this module refuses the known
low-order u-coordinates before multiplying (:func:`check_blinded`) and turns the library's
refusal into :class:`MalformedInput` as well. Values from a peer must be canonical (below
``2^255 - 19``); a point sent twice, once with a small-order component added, passes that check
but gives the same product, and :func:`reblind_batch` refuses repeats in its output too.

**Identifiers** are normalised before hashing (:func:`normalize_phone`, :func:`normalize_email`)
so that two channels that spell a customer differently still match, and hashed with domain
separation (:func:`identifier_hash`). Deduplicate before blinding (:func:`distinct`): a repeated
blinded value tells the peer that an identifier repeats, and peers refuse batches with
duplicates.

Streaming: the batch functions take and return plain lists, so a run can be fed chunk by chunk.
Checks for duplicates see one chunk; :func:`intersect` checks the whole sets at the end.

Everything here is pure: no I/O, no clock, and the only randomness is the source passed to
:meth:`PsiKey.generate`. What the protocol leaves to its caller: send blinded values in a random
order (the order of a list is information), use each key for one run only, and never let
identifiers, their hashes or their points leave the node.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from nacl.bindings import crypto_core_ed25519_add, crypto_core_ed25519_from_uniform

from accord.crypto.errors import MalformedInput

DOMAIN = b"accord-psi-v1\x00"
"""Prefix of every identifier hash; a new version of the protocol gets a new prefix."""

HASH_BYTES = 64
POINT_BYTES = 32
SCALAR_BYTES = 32

_P = 2**255 - 19
_Y_MASK = (1 << 255) - 1  # an Ed25519 encoding is y with the sign of x in bit 255

# The canonical u-coordinates of the points of order 1, 2, 4 and 8 on Curve25519 and its twist
# (libsodium's X25519 blocklist, less the non-canonical encodings that check_blinded refuses
# anyway). Multiplying any of them by a clamped scalar gives the all-zero output.
LOW_ORDER_U: frozenset[bytes] = frozenset(
    u.to_bytes(POINT_BYTES, "little")
    for u in (
        0,
        1,
        _P - 1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
    )
)

IdentifierKind = Literal["phone", "email"]
_KINDS: tuple[str, ...] = get_args(IdentifierKind)


# --- identifiers --------------------------------------------------------------------------------

# Full-width forms (typed on CJK keyboards) of the characters a phone number may hold.
_FULL_WIDTH = {ord(ch) + 0xFEE0: ch for ch in "0123456789+-.()"}
# Separators people put in phone numbers: whitespace, '-', '.', '(' and ')', plus the Unicode
# dashes word processors substitute for '-'.
_PHONE_SEPARATORS = dict.fromkeys(map(ord, "-.()\u2010\u2011\u2012\u2013\u2014\u2212"))
_DIGITS = frozenset("0123456789")
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
E164_MIN_DIGITS = 7
E164_MAX_DIGITS = 15


def normalize_phone(text: str, *, country_code: str) -> str:
    """A phone number in E.164 form, ``+<country code><national number>``.

    The rules, deliberately few (no numbering-plan database):

    * Full-width digits, ``+``, ``-``, ``.`` and parentheses become ASCII; whitespace, ``-``
      (and the Unicode dashes), ``.``, ``(`` and ``)`` are removed, and with a leading ``+`` so
      is a ``(0)`` (as in ``+44 (0)20 …``). Other digits (superscripts, other scripts) are not
      folded, and refused.
    * ``+`` followed by digits is already international and is kept as it is.
    * A number starting with the national trunk prefix ``0`` is national: that ``0`` is replaced
      by ``country_code`` (``"886"`` for Taiwan: ``0912-345-678`` → ``+886912345678``).
    * Everything else is refused: letters or other characters, a ``+`` not in front, a leading
      ``00`` (international prefixes differ by country), a number with neither ``+`` nor a trunk
      ``0`` (for countries without a trunk ``0``, such as NANP, give numbers with ``+``), and a
      result outside E.164's 7 to 15 digits.

    Messages never repeat the number: it is personal data.
    """
    if not _COUNTRY_CODE.fullmatch(country_code):
        raise MalformedInput("a country calling code is 1 to 3 digits, not starting with 0")
    if not isinstance(text, str):
        raise MalformedInput("a phone number must be text")
    folded = text.translate(_FULL_WIDTH).strip()
    if folded.startswith("+"):
        folded = folded.replace("(0)", "")
    compact = "".join(folded.translate(_PHONE_SEPARATORS).split())
    international = compact.startswith("+")
    digits = compact[1:] if international else compact
    if not digits or not _DIGITS.issuperset(digits):
        raise MalformedInput(
            "a phone number may hold only digits, spaces, '-', '.', '(', ')' and a leading '+'"
        )
    if international:
        if digits[0] == "0":
            raise MalformedInput(
                "after '+' comes a country calling code, which never starts with 0"
            )
        e164 = digits
    elif digits.startswith("00"):
        raise MalformedInput("write an international phone number with '+', not with '00'")
    elif digits[0] == "0":
        e164 = country_code + digits[1:]
    else:
        raise MalformedInput(
            "a phone number must start with '+' and a country code, or with the trunk prefix 0"
        )
    if not E164_MIN_DIGITS <= len(e164) <= E164_MAX_DIGITS:
        raise MalformedInput(
            f"a phone number has {E164_MIN_DIGITS} to {E164_MAX_DIGITS} digits"
            " with its country code"
        )
    return "+" + e164


_EMAIL_FORBIDDEN = frozenset('"(),:;<>[\\]')
EMAIL_MAX_LENGTH = 254
EMAIL_LOCAL_MAX_LENGTH = 64


def normalize_email(text: str) -> str:
    """An e-mail address trimmed, lower-cased and in Unicode NFC.

    Refused: not exactly one ``@``; an empty or over-long local part (64) or address (254);
    whitespace, control characters or any of ``"(),:;<>[\\]``; a local part with a leading,
    trailing or doubled ``.``; a domain without a dot or with an empty label. Provider-specific
    rewriting (dots or ``+tags`` in Gmail addresses) is not done: it would merge addresses that
    other providers keep apart. Messages never repeat the address: it is personal data.
    """
    if not isinstance(text, str):
        raise MalformedInput("an e-mail address must be text")
    address = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).strip().lower())
    if address.count("@") != 1:
        raise MalformedInput("an e-mail address has exactly one '@'")
    if len(address) > EMAIL_MAX_LENGTH:
        raise MalformedInput(f"an e-mail address is at most {EMAIL_MAX_LENGTH} characters")
    local, domain = address.split("@")
    if not local or len(local) > EMAIL_LOCAL_MAX_LENGTH:
        raise MalformedInput(
            f"the part of an e-mail address before '@' is 1 to {EMAIL_LOCAL_MAX_LENGTH} characters"
        )
    for ch in address:
        if ch in _EMAIL_FORBIDDEN or ch.isspace() or unicodedata.category(ch)[0] in "CZ":
            raise MalformedInput(
                'an e-mail address may not hold spaces, control characters or "(),:;<>[\\]'
            )
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise MalformedInput("the part of an e-mail address before '@' has a misplaced '.'")
    labels = domain.split(".")
    if len(labels) < 2 or not all(labels):
        raise MalformedInput("the domain of an e-mail address needs dot-separated names")
    return address


@dataclass(frozen=True)
class Identifier:
    """A normalised customer identifier; an instance exists only if ``value`` is normalised."""

    kind: IdentifierKind
    value: str

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise MalformedInput(f"identifier kind must be one of {', '.join(_KINDS)}")
        if not isinstance(self.value, str):
            raise MalformedInput("an identifier value must be text")
        if self.kind == "phone":
            if not _E164.fullmatch(self.value):
                raise MalformedInput("a phone identifier must be in E.164 form (+ and digits)")
        elif normalize_email(self.value) != self.value:
            raise MalformedInput("an e-mail identifier must be normalised (see normalize_email)")

    @classmethod
    def phone(cls, text: str, *, country_code: str) -> Identifier:
        return cls("phone", normalize_phone(text, country_code=country_code))

    @classmethod
    def email(cls, text: str) -> Identifier:
        return cls("email", normalize_email(text))

    def __repr__(self) -> str:  # personal data: never in logs or tracebacks
        return f"Identifier(kind={self.kind!r}, value=<{len(self.value)} characters>)"


def identifier_hash(identifier: Identifier) -> bytes:
    """SHA-512 of ``accord-psi-v1 NUL kind NUL value`` (UTF-8): the input of the curve map."""
    data = DOMAIN + identifier.kind.encode() + b"\x00" + identifier.value.encode()
    return hashlib.sha512(data).digest()


@dataclass(frozen=True)
class Distinct:
    """Distinct values in first-seen order, and where each original position went."""

    values: tuple[bytes, ...]
    slots: tuple[int, ...]
    """``values[slots[i]]`` is the ``i``-th original value."""

    def originals(self, indices: Iterable[int]) -> list[int]:
        """The original positions whose value is ``values[j]`` for some ``j`` in ``indices``."""
        wanted = set(indices)
        return [i for i, slot in enumerate(self.slots) if slot in wanted]


def distinct(values: Iterable[bytes]) -> Distinct:
    """Deduplicate hashes before blinding; map results back with :meth:`Distinct.originals`."""
    first: dict[bytes, int] = {}
    slots = [first.setdefault(value, len(first)) for value in values]
    return Distinct(tuple(first), tuple(slots))


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PsiKey:
    """One party's secret blinding scalar for one PSI run. Never reuse it for another run.

    Reusing a key across runs makes the runs linkable: the same identifier would blind to the
    same value. Make a new one with :meth:`generate` for every run and drop it afterwards.
    """

    secret: bytes
    _private: X25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != SCALAR_BYTES:
            raise MalformedInput(f"a PSI key is {SCALAR_BYTES} bytes")
        object.__setattr__(self, "_private", X25519PrivateKey.from_private_bytes(self.secret))

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes]) -> PsiKey:
        """A fresh key from ``random_bytes`` (``secrets.token_bytes`` or ``os.urandom``)."""
        return cls(random_bytes(SCALAR_BYTES))

    def __repr__(self) -> str:  # never print the secret
        return "PsiKey(<secret>)"


# --- the group ----------------------------------------------------------------------------------


def _batch_inverse(values: list[int]) -> list[int]:
    """Inverses mod p of nonzero ``values`` with one exponentiation (Montgomery's trick)."""
    prefix = [1] * (len(values) + 1)
    acc = 1
    for i, value in enumerate(values):
        acc = acc * value % _P
        prefix[i + 1] = acc
    inverse = pow(acc, -1, _P)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = inverse * prefix[i] % _P
        inverse = inverse * values[i] % _P
    return out


def hash_to_points(hashes: Sequence[bytes]) -> list[bytes]:
    """Map 64-byte identifier hashes to u-coordinates in the prime-order subgroup of Curve25519.

    Run-independent, so the result may be kept and reused with :func:`blind_points`; it is as
    sensitive as the identifiers themselves (anyone can recompute it from a guessed identifier).
    """
    from_uniform = crypto_core_ed25519_from_uniform
    add = crypto_core_ed25519_add
    ys: list[int] = []
    for index, digest in enumerate(hashes):
        if not isinstance(digest, bytes) or len(digest) != HASH_BYTES:
            raise MalformedInput(f"identifier hash at index {index} is not {HASH_BYTES} bytes")
        point = add(from_uniform(digest[:32]), from_uniform(digest[32:]))
        ys.append(int.from_bytes(point, "little") & _Y_MASK)
    denominators = [(1 - y) % _P for y in ys]
    if 0 in denominators:  # the identity: two halves that cancel, with probability ~2^-252
        index = denominators.index(0)
        raise MalformedInput(f"identifier hash at index {index} maps to the identity")
    inverses = _batch_inverse(denominators)
    return [
        ((1 + y) * inverse % _P).to_bytes(POINT_BYTES, "little")
        for y, inverse in zip(ys, inverses, strict=True)
    ]


def _multiply(key: PsiKey, points: Sequence[bytes]) -> list[bytes]:
    exchange = key._private.exchange
    load = X25519PublicKey.from_public_bytes
    try:
        return [exchange(load(point)) for point in points]
    except ValueError:
        for index, point in enumerate(points):
            try:
                exchange(load(point))
            except ValueError:
                raise MalformedInput(
                    f"value at index {index}: invalid point (low order or wrong length)"
                ) from None
        raise


def check_blinded(values: Sequence[bytes]) -> None:
    """Raise :class:`MalformedInput`, naming the index, unless every value is a canonical 32-byte
    u-coordinate, not of low order, and no value repeats."""
    for index, value in enumerate(values):
        if not isinstance(value, bytes) or len(value) != POINT_BYTES:
            raise MalformedInput(f"blinded value at index {index} is not {POINT_BYTES} bytes")
        if int.from_bytes(value, "little") >= _P:
            raise MalformedInput(f"blinded value at index {index} is not canonically encoded")
        if value in LOW_ORDER_U:
            raise MalformedInput(f"blinded value at index {index}: invalid point (low order)")
    _check_unique(values, "blinded value")


def _check_unique(values: Sequence[bytes], what: str) -> None:
    if len(set(values)) == len(values):
        return
    seen: dict[bytes, int] = {}
    for index, value in enumerate(values):
        if value in seen:
            raise MalformedInput(f"{what} at index {index} repeats the one at index {seen[value]}")
        seen[value] = index


def blind_points(key: PsiKey, points: Sequence[bytes]) -> list[bytes]:
    """Multiply the node's own points (from :func:`hash_to_points`) by ``key``: one X25519 each."""
    return _multiply(key, points)


def blind_batch(key: PsiKey, hashes: Sequence[bytes]) -> list[bytes]:
    """Step 1: ``key·H(x)`` for each identifier hash, in order. Deduplicate first."""
    return _multiply(key, hash_to_points(hashes))


def reblind_batch(key: PsiKey, blinded: Sequence[bytes]) -> list[bytes]:
    """Step 2: ``key·v`` for each value ``v`` the peer blinded, in order, after
    :func:`check_blinded`. Two different encodings of one point (a small-order component added)
    give the same output, so the output is checked for repeats too."""
    check_blinded(blinded)
    out = _multiply(key, blinded)
    _check_unique(out, "peer's blinded value")
    return out


def blind(key: PsiKey, identifier_hash: bytes) -> bytes:
    """:func:`blind_batch` for one hash."""
    return blind_batch(key, [identifier_hash])[0]


def reblind(key: PsiKey, blinded: bytes) -> bytes:
    """:func:`reblind_batch` for one value."""
    return reblind_batch(key, [blinded])[0]


def intersect(mine: Sequence[bytes], theirs: Sequence[bytes]) -> list[int]:
    """Step 3: the indices (ascending) of ``mine`` whose value also occurs in ``theirs``.

    ``mine`` are my values blinded by both parties, in the order I sent them; ``theirs`` the
    peer's values blinded by both. Both are checked with :func:`check_blinded` first.
    """
    check_blinded(mine)
    check_blinded(theirs)
    their_set = frozenset(theirs)
    return [index for index, value in enumerate(mine) if value in their_set]
