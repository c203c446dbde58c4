"""Ledger events: canonical, validated, free of personal data; the vocabulary maps to DPV."""

from __future__ import annotations

import contextlib
import json
from hashlib import sha256

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.consent.events import (
    ConsentGranted,
    ConsentRevoked,
    ConsentStatus,
    DataUse,
    Record,
    Use,
    decode,
    encode,
)
from accord.consent.vocabulary import SECTIONS, vocabulary
from accord.errors import InvalidInput

S, C = sha256(b"s").digest(), sha256(b"c").digest()


def test_every_vocabulary_term_maps_to_a_dpv_iri() -> None:
    vocab = vocabulary()
    assert set(vocab) == set(SECTIONS)
    for section, terms in vocab.items():
        assert terms, section
        for term in terms.values():
            assert term.dpv.startswith(("https://w3id.org/dpv#", "https://w3id.org/dpv/pd#")), term
            assert term.label
    assert {"model-training", "marketing", "risk-scoring", "service-provision"} <= set(
        vocab["purposes"]
    )


@pytest.mark.parametrize(
    "event",
    [
        ConsentGranted("pay", S, C, ("model-training", "marketing"), 2_000_000_000, 1_700_000_000),
        ConsentRevoked("pay", S, C, 1_700_000_100, "withdrawn"),
        DataUse("shop", "marketing", "score-abc", 1_700_000_200, (Use(S, C, 3), Use(C, S, 4))),
        Record("coordinator", "alignment.run", 1_700_000_300, {"run": "r1", "sizes": {"pay": 10}}),
    ],
)
def test_events_round_trip_canonically(event: object) -> None:
    data = encode(event)  # type: ignore[arg-type]
    assert decode(data) == event
    assert b" " not in data


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda o: o.update(purposes=["selling-data"]), "not in the vocabulary"),
        (lambda o: o.update(subject="short"), "subject"),
        (lambda o: o.update(node="Pay"), "node"),
        (lambda o: o.update(phone="+886912345678"), "unexpected fields phone"),
        (lambda o: o.pop("expires"), "expires"),
        (lambda o: o.update(v=2), "unsupported event version"),
        (lambda o: o.update(type="consent.sold"), "unknown event type"),
    ],
)
def test_malformed_events_are_refused_naming_the_field(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    obj = json.loads(encode(ConsentGranted("pay", S, C, ("marketing",), 2_000_000_000, 1)))
    mutate(obj)
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(InvalidInput, match=message):
        decode(data)


def test_non_canonical_json_is_refused() -> None:
    data = encode(ConsentGranted("pay", S, C, ("marketing",), 2_000_000_000, 1))
    spaced = json.dumps(json.loads(data), sort_keys=True).encode()
    with pytest.raises(InvalidInput, match="canonical"):
        decode(spaced)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_invalid_input(data: bytes) -> None:
    with contextlib.suppress(InvalidInput):
        decode(data)


def test_status_round_trip() -> None:
    status = ConsentStatus("revoked", "pay", ("marketing",), 5, 1, 9)
    assert ConsentStatus.from_json(json.loads(status.encode())) == status


def test_issue_20_events_round_trip_and_refuse_what_they_do_not_carry() -> None:
    from accord.consent.events import (
        IssuerKey,
        UseProof,
        UseRefused,
        seal_data_use,
    )

    proof = UseProof(1_800_000_000 - 1_800_000_000 % 86400, "nonce-1", bytes(range(200)) * 3)
    use = seal_data_use("pay", "marketing", "req", 7, [(Use(S, C, 3), b"k" * 32)], None, proof)
    for event in (
        use,
        IssuerKey("pay", 7, bytes(96)),
        UseRefused("pay", "marketing", 7, "expired"),
    ):
        assert decode(encode(event)) == event
    with pytest.raises(InvalidInput, match="one use"):  # a proof vouches for one customer's use
        seal_data_use("pay", "marketing", "r", 7, [(Use(S, C, 3), b"k" * 32)] * 2, None, proof)
    body = json.loads(encode(use))
    for mutate, message in (
        (lambda b: b["proof"].update(extra=1), "unexpected fields extra"),
        (lambda b: b["proof"].pop("nonce"), "missing fields nonce"),
        (lambda b: b["proof"].update(nonce="x" * 65), "proof.nonce"),
        (lambda b: b["proof"].update(proof="not base64!"), "proof.proof"),
        (lambda b: b.update(proof=[]), "proof must be an object"),
    ):
        changed = json.loads(encode(use))
        mutate(changed)
        with pytest.raises(InvalidInput, match=message):
            decode(json.dumps(changed, sort_keys=True, separators=(",", ":")).encode())
    assert body["proof"]["nonce"] == "nonce-1"
    refused = json.loads(encode(UseRefused("pay", "marketing", 7, "expired")))
    refused["reason"] = "because"
    with pytest.raises(InvalidInput, match="reason must be one of"):
        decode(json.dumps(refused, sort_keys=True, separators=(",", ":")).encode())
    key = json.loads(encode(IssuerKey("pay", 7, bytes(96))))
    key["key"] = "AAAA"
    with pytest.raises(InvalidInput, match="key must be 96 bytes"):
        decode(json.dumps(key, sort_keys=True, separators=(",", ":")).encode())
