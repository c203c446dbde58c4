"""Sealed data uses: only the auditor's key opens them, only the customer's key recognises
their tags, a seal cannot move to another entry, and nodes seal only to the network's auditor."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest

from accord.consent.events import (
    MAX_SEALED_USES,
    Use,
    decode,
    encode,
    open_data_use,
    seal_data_use,
)
from accord.crypto.commitment import Opening, use_tag_key
from accord.crypto.errors import CryptoError, VerificationError
from accord.crypto.pki import issue_party_certificate, make_ca
from accord.crypto.tiles import MAX_ENTRY_BYTES
from accord.crypto.use_seal import AuditedUse, audit_recipient, open_uses, seal_uses, tag_matches
from accord.errors import InvalidInput

NOW = dt.datetime.now(dt.UTC)
CA = make_ca("accord.test", now=NOW)
AUDITOR = issue_party_certificate(CA, "auditor", role="auditor", now=NOW)
MARKETER = issue_party_certificate(CA, "marketer", role="marketer", now=NOW)
KEY = audit_recipient(AUDITOR.cert_pem, CA.cert_pem, now=NOW)
SALT = secrets.token_bytes(32)
USE = Use(bytes(range(32)), bytes(range(32, 64)), 7)


def test_only_the_auditor_opens_and_two_seals_share_nothing() -> None:
    uses = (AuditedUse(USE.subject, USE.consent, USE.consent_index),)
    one = seal_uses(KEY, "req-1", uses, info=b"entry")
    two = seal_uses(KEY, "req-1", uses, info=b"entry")
    assert len(one) == len(two) and not {one[i : i + 8] for i in range(len(one) - 8)} & {
        two[i : i + 8] for i in range(len(two) - 8)
    }
    assert open_uses(AUDITOR.key_pem, one, info=b"entry") == ("req-1", uses)
    with pytest.raises(VerificationError):
        open_uses(MARKETER.key_pem, one, info=b"entry")
    with pytest.raises(VerificationError):  # moved to another entry
        open_uses(AUDITOR.key_pem, one, info=b"another entry")


def test_sealed_size_does_not_depend_on_the_session() -> None:
    uses = (AuditedUse(USE.subject, USE.consent, USE.consent_index),)
    assert len(seal_uses(KEY, "a", uses, info=b"")) == len(seal_uses(KEY, "b" * 64, uses, info=b""))


def test_the_customer_recognises_their_tags_and_nobody_elses() -> None:
    mine = Opening("pay", "pay-1", SALT)
    event = seal_data_use("pay", "marketing", "req-1", 1, [(USE, mine.use_tag_key())], KEY)
    decoded = decode(encode(event))
    (tag,) = decoded.uses  # type: ignore[union-attr]
    assert tag_matches(mine.use_tag_key(), tag.nonce, tag.tag)
    assert not tag_matches(use_tag_key(SALT, "pay", "pay-2"), tag.nonce, tag.tag)
    assert not tag_matches(mine.subject(), tag.nonce, tag.tag)  # the public commitment is no key
    assert open_data_use(decoded, AUDITOR.key_pem) == ("req-1", (USE,))  # type: ignore[arg-type]
    assert b"req-1" not in encode(event) and b"pay-1" not in encode(event)


def test_a_seal_moved_onto_another_entry_does_not_open() -> None:
    key = use_tag_key(SALT, "pay", "pay-1")
    a = seal_data_use("pay", "marketing", "req-1", 1, [(USE, key)], KEY)
    b = seal_data_use("pay", "marketing", "req-2", 1, [(USE, key)], KEY)
    swapped = type(b)(b.node, b.purpose, b.at, b.uses, a.audit)
    with pytest.raises(CryptoError):
        open_data_use(swapped, AUDITOR.key_pem)


def test_nodes_seal_only_to_the_networks_auditor() -> None:
    with pytest.raises(VerificationError, match="auditor role"):
        audit_recipient(MARKETER.cert_pem, CA.cert_pem, now=NOW)
    other = make_ca("evil.example", now=NOW)
    foreign = issue_party_certificate(other, "auditor", role="auditor", now=NOW)
    with pytest.raises(VerificationError, match="not issued by this network's CA"):
        audit_recipient(foreign.cert_pem, CA.cert_pem, now=NOW)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.replace(b'"audit":"', b'"audit":"!'),
        lambda d: d.replace(b'"nonce":"', b'"nonce":"AAAA'),
        lambda d: d.replace(b'"tag":"', b'"tag":"AAAA'),
        lambda d: d.replace(b'"uses":[', b'"session":"x","uses":['),
    ],
)
def test_malformed_sealed_uses_are_refused(change) -> None:  # type: ignore[no-untyped-def]
    event = seal_data_use("pay", "marketing", "r", 1, [(USE, use_tag_key(SALT, "pay", "x"))], KEY)
    with pytest.raises(InvalidInput):
        decode(change(encode(event)))


def test_a_full_entry_fits_the_ledgers_entry_limit_and_one_more_is_refused() -> None:
    key = use_tag_key(SALT, "pay", "x")
    longest = "s" * 64
    full = seal_data_use("pay", "model-training", longest, 1, [(USE, key)] * MAX_SEALED_USES, KEY)
    data = encode(full)
    assert len(data) <= MAX_ENTRY_BYTES
    assert len(open_data_use(decode(data), AUDITOR.key_pem)[1]) == MAX_SEALED_USES  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        seal_data_use("pay", "model-training", "s", 1, [(USE, key)] * (MAX_SEALED_USES + 1), KEY)
