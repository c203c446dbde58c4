from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.keys import KeyAgreementKey, NoteSigner, NoteVerifier, key_id


def test_verifier_key_round_trip_and_id() -> None:
    signer = NoteSigner.generate("accord.test/coordinator")
    text = signer.verifier.encode()
    name, hex_id, blob = text.split("+", 2)
    assert name == "accord.test/coordinator"
    assert bytes.fromhex(hex_id) == key_id(name, signer.verifier.public_key)
    assert base64.b64decode(blob)[0] == 0x01
    assert NoteVerifier.parse(text) == signer.verifier
    assert NoteSigner.parse(signer.encode()) == signer


def test_known_c2sp_verifier_key_parses_with_plus_in_base64() -> None:
    # The Tessera test log's key: its base64 part itself contains '+'.
    text = "example.com/log/testdata+33d7b496+AeHTu4Q3hEIMHNqc6fASMsq3rKNx280NI+oO5xCFkkSx"
    verifier = NoteVerifier.parse(text)
    assert verifier.name == "example.com/log/testdata"
    assert verifier.encode() == text


def test_signature_verifies_and_tampering_fails() -> None:
    signer = NoteSigner.generate("n")
    sig = signer.sign(b"hello")
    signer.verifier.verify(sig, b"hello")
    with pytest.raises(VerificationError):
        signer.verifier.verify(sig, b"hellp")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name",
        "name+abcd",
        "name+zzzzzzzz+AAAA",
        "name+00000000+" + base64.b64encode(b"\x01" + bytes(32)).decode(),  # wrong key id
        "na me+00000000+AAAA",
        "name+0000+" + base64.b64encode(b"\x01" + bytes(32)).decode(),
        "name+00000000+" + base64.b64encode(b"\x02" + bytes(32)).decode(),
    ],
)
def test_bad_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(MalformedInput):
        NoteVerifier.parse(text)


@given(st.text(max_size=200))
def test_parsing_arbitrary_text_raises_only_malformed(text: str) -> None:
    with contextlib.suppress(MalformedInput):
        NoteVerifier.parse(text)


def test_key_agreement_is_symmetric_and_secret_not_in_repr() -> None:
    a, b = KeyAgreementKey.generate(), KeyAgreementKey.generate()
    assert a.exchange(b.public_key) == b.exchange(a.public_key)
    assert a.secret.hex() not in repr(a)
    signer = NoteSigner.generate("x")
    assert signer.seed.hex() not in repr(signer)
