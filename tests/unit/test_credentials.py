"""P6: ephemeral relationship credentials are refused for every broken check, and unlinkable."""

from __future__ import annotations

import base64
import json
import secrets

import pytest

from accord.credentials import (
    CredentialRejected,
    ReplayCache,
    holder_public_json,
    issue,
    new_holder_key,
    present,
    verify,
)
from accord.crypto.keys import KeyAgreementKey, NoteSigner
from accord.errors import NotAuthenticated, NotPermitted

COORD = NoteSigner.generate("accord.test/coordinator")
NODES = {n: KeyAgreementKey.generate() for n in ("pay", "shop", "social")}
ROW = {n: secrets.token_bytes(16) for n in NODES}
NOW = 1_800_000_000


def credential(
    row: dict[str, bytes] | None = None, now: int = NOW, purposes: list[str] | None = None
):  # type: ignore[no-untyped-def]
    holder = new_holder_key()
    issued = issue(
        COORD,
        request_id=secrets.token_hex(8),
        purposes=purposes or ["marketing"],
        touchpoint="checkout",
        model="trust-x",
        nodes={n: (k.public_key, (row or ROW)[n]) for n, k in NODES.items()},
        holder_jwk=holder_public_json(holder),
        now=now,
    )
    return issued, holder


def check(presentation: str, node: str = "pay", purpose: str = "marketing", now: int = NOW):  # type: ignore[no-untyped-def]
    return verify(
        presentation, node=node, kx_key=NODES[node], issuer=COORD.verifier, purpose=purpose, now=now
    )


def test_a_good_presentation_opens_only_this_nodes_row_key() -> None:
    issued, holder = credential()
    pres = present(issued.credential, "pay", holder)
    verified = check(pres)
    assert verified.row_key == ROW["pay"]
    assert verified.purposes == ("marketing",)
    # the presentation discloses pay's part only: shop's sealed key is not in it
    disclosures = [json.loads(base64.urlsafe_b64decode(d + "==")) for d in pres.split("~")[1:-1]]
    assert [d[1] for d in disclosures] == ["pay"]


def test_expired() -> None:
    issued, holder = credential(now=NOW - 3600)
    with pytest.raises(CredentialRejected, match="expired"):
        check(present(issued.credential, "pay", holder))


def test_replayed() -> None:
    issued, holder = credential()
    verified = check(present(issued.credential, "pay", holder))
    cache = ReplayCache()
    cache.use(verified.nonce, "compute", verified.expires, NOW)
    with pytest.raises(CredentialRejected, match="replayed"):
        cache.use(verified.nonce, "compute", verified.expires, NOW)


def test_wrong_audience() -> None:
    issued, holder = credential()
    to_pay = present(issued.credential, "pay", holder)
    with pytest.raises(CredentialRejected, match="not addressed to 'shop'"):
        check(to_pay, node="shop")


def test_wrong_purpose() -> None:
    issued, holder = credential()
    with pytest.raises(NotPermitted, match="does not cover purpose 'risk-scoring'"):
        check(present(issued.credential, "pay", holder), purpose="risk-scoring")


def test_tampered() -> None:
    issued, holder = credential()
    pres = present(issued.credential, "pay", holder)
    jwt, rest = pres.split("~", 1)
    header, payload, sig = jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["purposes"] = ["marketing", "risk-scoring"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(CredentialRejected, match="does not verify"):
        check(f"{header}.{forged}.{sig}~{rest}")


def test_wrong_holder() -> None:
    issued, _ = credential()
    thief = new_holder_key()
    with pytest.raises(CredentialRejected, match="does not verify"):
        check(present(issued.credential, "pay", thief))


def test_all_failures_are_unauthenticated_or_permission_denied() -> None:
    assert issubclass(CredentialRejected, NotAuthenticated)


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _leaves(value: object) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_leaves(v) | {str(k)} for k, v in value.items())) if value else set()
    if isinstance(value, list):
        return set().union(*(_leaves(v) for v in value)) if value else set()
    return {json.dumps(value)}


def visible(presentation: str) -> set[bytes]:
    """Every field, key and ciphertext a node sees in a presentation, as byte strings."""
    jwt, *disclosures, kb = presentation.split("~")
    parts: set[str] = set()
    for token in (jwt, kb):
        header, payload, signature = token.split(".")
        parts |= _leaves(json.loads(_b64d(header))) | _leaves(json.loads(_b64d(payload)))
        parts.add(signature)
    for d in disclosures:
        parts |= _leaves(json.loads(_b64d(d)))
    out = set()
    for p in parts:
        raw = p.strip('"').encode()
        out.add(raw)
        try:  # base64url fields: compare their bytes too
            out.add(_b64d(raw.decode()))
        except (ValueError, UnicodeDecodeError):
            pass
    return {v for v in out if len(v) >= 8}


def test_two_credentials_for_one_customer_share_nothing_a_third_party_could_link() -> None:
    """Any field one customer's two credentials share, different customers' credentials share too."""
    first, h1 = credential()
    second, h2 = credential()
    other, h3 = credential(row={n: secrets.token_bytes(16) for n in NODES})
    for node in ("shop", "social"):  # nodes that are not this customer's own channel here
        a = visible(present(first.credential, node, h1))
        b = visible(present(second.credential, node, h2))
        c = visible(present(other.credential, node, h3))
        same_customer = a & b
        assert same_customer <= (a & c) | (b & c), same_customer - ((a & c) | (b & c))
        # what they do share is structure the protocol fixes for everyone
        assert same_customer <= {
            b'"EdDSA"',
            b"EdDSA",
            b"sha-256",
            b"accord.test/coordinator",
            b"checkout",
            b"marketing",
            b"trust-x",
            b"purposes",
            b"touchpoint",
            b"kb+jwt",
            b"example+sd-jwt",
            b"dc+sd-jwt",
            b"rowKey",
            b"sd_hash",
        } | (a & c)
    assert all(first.nonces[n] != second.nonces[n] for n in NODES)
