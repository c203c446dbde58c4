"""accord.consent.credential with accord.wallet.holder: issue, accept, present, verify, and each
refusal with its own reason (other purpose, expired, replayed, another channel's key)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from accord.consent import credential as cred
from accord.consent.vocabulary import PURPOSES
from accord.crypto import bbs
from accord.crypto.errors import BbsVerificationError
from accord.errors import InvalidInput, NotFound
from accord.wallet import holder
from accord.wallet.store import Wallet

DAY = cred.DAY
NOW = 1_790_000_000 - 1_790_000_000 % DAY + 3600  # 01:00 UTC
SHOP_SK = bbs.key_gen(b"shop channel test key material, 32+ bytes", b"shop")
SHOP_PK = bbs.sk_to_pk(SHOP_SK)
PAY_SK = bbs.key_gen(b"pay channel test key material, 32+ bytes!", b"pay")
PAY_PK = bbs.sk_to_pk(PAY_SK)
NONCE = b"\x01" * 16


def _fields(purposes: tuple[str, ...] = ("risk-scoring", "marketing")) -> cred.CredentialFields:
    expires = cred.credential_expiry(NOW, NOW + 30 * DAY)
    return cred.CredentialFields("shop", expires, "2026-09", "TW", purposes)


def _wallet_with_credential() -> Wallet:
    wallet = Wallet(bytes(range(32)).hex())
    asked = holder.request(wallet, "shop")
    signature, messages = cred.issue(SHOP_SK, SHOP_PK, asked.commitment, _fields())
    holder.accept(wallet, asked.request_id, SHOP_PK, signature, messages)
    return wallet


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return _wallet_with_credential()


def _verify(
    shown: cred.Presentation,
    *,
    pk: bytes = SHOP_PK,
    channel: str = "shop",
    purpose: str = "risk-scoring",
    nonce: bytes = NONCE,
    audience: str = "pay",
    now: int = NOW,
) -> None:
    cred.verify_presentation(
        pk, shown, channel=channel, purpose=purpose, nonce=nonce, audience=audience, now=now
    )


def test_the_layout_is_fixed_and_round_trips() -> None:
    few, many = _fields(("marketing",)), _fields(PURPOSES)
    assert len(few.messages()) == len(many.messages()) == cred.MESSAGE_COUNT
    assert cred.CredentialFields.from_messages(few.messages()) == few
    with pytest.raises(InvalidInput):
        cred.CredentialFields.from_messages(list(reversed(many.messages())))
    with pytest.raises(InvalidInput):
        cred.CredentialFields("shop", NOW, "n", "TW", ()).messages()  # not a midnight


def test_expiry_is_a_shared_midnight_never_past_the_consent() -> None:
    assert cred.credential_expiry(NOW, NOW + 30 * DAY) == NOW - 3600 + DAY
    assert cred.credential_expiry(NOW + 7200, NOW + 30 * DAY) == NOW - 3600 + DAY
    assert cred.credential_expiry(NOW, NOW + 30 * DAY, ttl_days=7) == NOW - 3600 + 7 * DAY
    assert cred.credential_expiry(NOW, NOW + 2 * DAY, ttl_days=7) == NOW - 3600 + 2 * DAY
    with pytest.raises(InvalidInput):
        cred.credential_expiry(NOW, NOW + 3600)


def test_a_presentation_authorises_exactly_its_use(wallet: Wallet) -> None:
    shown = holder.present(wallet, "shop", "risk-scoring", NONCE, "pay", NOW)
    _verify(shown)
    assert cred.Presentation.from_json(shown.to_json()) == shown
    refusals: dict[str, Callable[[], None]] = {
        "purpose": lambda: _verify(shown, purpose="marketing"),
        "channel": lambda: _verify(shown, channel="pay"),
        "expired": lambda: _verify(shown, now=shown.expires_at),
        "replay-nonce": lambda: _verify(shown, nonce=b"\x02" * 16),
        "replay-audience": lambda: _verify(shown, audience="social"),
        "other-key": lambda: _verify(shown, pk=PAY_PK),
    }
    reasons = {}
    for name, attempt in refusals.items():
        with pytest.raises(cred.PresentationRefused) as refused:
            attempt()
        reasons[name] = refused.value.reason
    assert reasons == {
        "purpose": "purpose",
        "channel": "channel",
        "expired": "expired",
        "replay-nonce": "proof",
        "replay-audience": "proof",
        "other-key": "proof",
    }


def test_claims_the_proof_does_not_carry_are_refused(wallet: Wallet) -> None:
    shown = holder.present(wallet, "shop", "risk-scoring", NONCE, "pay", NOW)
    for forged in (
        cred.Presentation("shop", "marketing", shown.expires_at, shown.proof),
        cred.Presentation("shop", "risk-scoring", shown.expires_at + DAY, shown.proof),
        cred.Presentation("pay", "risk-scoring", shown.expires_at, shown.proof),
    ):
        with pytest.raises(cred.PresentationRefused) as refused:
            _verify(forged, channel=forged.channel, purpose=forged.purpose)
        assert refused.value.reason == "proof"


def test_a_proof_of_another_shape_is_refused(wallet: Wallet) -> None:
    from accord.crypto.bbs import blind

    # a blind signature over the same messages but no holder secret, proven honestly
    fields = _fields()
    signature = blind.blind_sign(SHOP_SK, SHOP_PK, b"", cred.HEADER, fields.messages())
    index = cred.purpose_index("risk-scoring")
    proof = blind.blind_proof_gen(
        SHOP_PK,
        signature,
        cred.HEADER,
        cred.presentation_header(NONCE, "pay"),
        fields.messages(),
        [],
        [0, 1, index],
    )
    with pytest.raises(cred.PresentationRefused, match="wrong length"):
        _verify(cred.Presentation("shop", "risk-scoring", fields.expires_at, proof))


def test_the_holder_cannot_present_what_the_consent_does_not_cover(wallet: Wallet) -> None:
    with pytest.raises(InvalidInput, match="does not cover"):
        holder.present(wallet, "shop", "model-training", NONCE, "pay", NOW)
    with pytest.raises(InvalidInput, match="expired"):
        holder.present(wallet, "shop", "risk-scoring", NONCE, "pay", NOW + 2 * DAY)
    with pytest.raises(NotFound):
        holder.present(wallet, "pay", "risk-scoring", NONCE, "pay", NOW)


def test_two_uses_share_no_proof_bytes(wallet: Wallet) -> None:
    first = holder.present(wallet, "shop", "risk-scoring", NONCE, "pay", NOW).proof
    second = holder.present(wallet, "shop", "risk-scoring", NONCE, "pay", NOW).proof
    assert len(first) == len(second)
    chunks = {first[i : i + 16] for i in range(0, len(first), 16)}
    assert not chunks & {second[i : i + 16] for i in range(0, len(second), 16)}


def test_accept_checks_the_credential_and_changes_nothing_when_refusing() -> None:
    wallet = Wallet(bytes(range(32)).hex())
    asked = holder.request(wallet, "shop")
    stranger = Wallet(bytes(range(1, 33)).hex())
    theirs = holder.request(stranger, "shop")
    signature, messages = cred.issue(SHOP_SK, SHOP_PK, theirs.commitment, _fields())
    with pytest.raises(BbsVerificationError):  # signed over someone else's secret
        holder.accept(wallet, asked.request_id, SHOP_PK, signature, messages)
    signature, messages = cred.issue(SHOP_SK, SHOP_PK, asked.commitment, _fields())
    with pytest.raises(BbsVerificationError):  # checked under another channel's key
        holder.accept(wallet, asked.request_id, PAY_PK, signature, messages)
    pay_fields = cred.CredentialFields("pay", _fields().expires_at, "n", "TW", ("marketing",))
    pay_sig, pay_messages = cred.issue(PAY_SK, PAY_PK, asked.commitment, pay_fields)
    with pytest.raises(InvalidInput, match="request went to"):
        holder.accept(wallet, asked.request_id, PAY_PK, pay_sig, pay_messages)
    assert wallet.credentials == [] and asked.request_id in wallet.pending
    holder.accept(wallet, asked.request_id, SHOP_PK, signature, messages)
    assert [c.channel for c in wallet.credentials] == ["shop"] and not wallet.pending


def test_the_channel_signs_only_a_commitment_to_the_holder_secret_alone() -> None:
    from accord.crypto.bbs import blind

    two, _ = blind.commit([b"secret", b"extra"])
    with pytest.raises(BbsVerificationError):
        cred.issue(SHOP_SK, SHOP_PK, two, _fields())
    with pytest.raises(BbsVerificationError):
        cred.issue(SHOP_SK, SHOP_PK, b"", _fields())
