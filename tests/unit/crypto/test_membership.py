"""The operator-signed membership list: signed by the CA key, checked byte for byte."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.membership import Member, Membership, sign_membership, verify_membership
from accord.crypto.pki import make_ca

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PAY = Member("pay", "feature", "a" * 64)
LABEL = Member("label", "label", "b" * 64)


def test_a_signed_list_verifies_and_round_trips() -> None:
    ca = make_ca("accord.test", now=NOW)
    membership = Membership("accord.test", 0).with_member(PAY).with_member(LABEL)
    assert membership.version == 2
    assert verify_membership(sign_membership(membership, ca.key_pem), ca.cert_pem) == membership


def test_an_edited_list_or_another_ca_does_not_verify() -> None:
    ca, other = make_ca("accord.test", now=NOW), make_ca("rogue", now=NOW)
    signed = sign_membership(Membership("accord.test", 1, (PAY,)), ca.key_pem)
    outer = json.loads(signed)
    outer["document"] = outer["document"].replace('"feature"', '"label"')
    with pytest.raises(VerificationError):
        verify_membership(json.dumps(outer).encode(), ca.cert_pem)
    with pytest.raises(VerificationError):
        verify_membership(signed, other.cert_pem)
    with pytest.raises(MalformedInput):
        verify_membership(b"{}", ca.cert_pem)


def test_one_label_and_one_coordinator_per_network() -> None:
    membership = Membership("accord.test", 0).with_member(LABEL)
    with pytest.raises(VerificationError, match="already holds the label role"):
        membership.with_member(Member("crm", "label", "c" * 64))
    # the same party may get a new certificate
    assert membership.with_member(Member("label", "label", "d" * 64)).members[0].fingerprint == (
        "d" * 64
    )
    with pytest.raises(MalformedInput):
        membership.with_member(Member("pay", "feature", "not-hex"))
