"""accord.crypto.cosignature: C2SP tlog-cosignature v1 (Ed25519), checked independently."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from accord.crypto import cosignature as cs
from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.keys import NoteSigner, NoteVerifier
from accord.crypto.note import Checkpoint, NoteSignature, sign_checkpoint, verify_checkpoint

LOG = NoteSigner("example.org/ledger", bytes(range(32)))
WITNESS = NoteSigner("witness.example/w1", bytes(range(1, 33)))
OTHER = NoteSigner("witness.example/w2", bytes(range(2, 34)))
CHECKPOINT = Checkpoint("example.org/ledger", 42, bytes(range(32)), ("accord-time 1700000000",))
BODY = CHECKPOINT.to_text()
NOTE = sign_checkpoint(CHECKPOINT, [LOG])


def test_cosignature_is_the_spec_layout_checked_with_a_bare_ed25519_verify() -> None:
    line = cs.cosign(BODY, WITNESS, 1679315147).line()
    assert line.startswith("\u2014 witness.example/w1 ")
    blob = base64.b64decode(line.split(" ")[2])
    public = WITNESS.verifier.public_key
    key_id = hashlib.sha256(b"witness.example/w1\n\x04" + public).digest()[:4]
    assert blob[:4] == key_id
    assert blob[:4] != WITNESS.verifier.key_id  # the note key id uses 0x01
    assert int.from_bytes(blob[4:12], "big") == 1679315147
    message = b"cosignature/v1\ntime 1679315147\n" + BODY.encode()
    Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)  # raises if wrong
    assert len(blob) == 4 + 8 + 64


def test_the_specs_example_line_parses_to_its_timestamp() -> None:
    # c2sp.org/tlog-cosignature's example: "time 1679315147" in its signed message.
    example = (
        "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZC"
        "B9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
    )
    sig = cs.parse_line(example + "\n")
    assert sig.name == "witness.example.com/w1"
    assert len(sig.signature) == cs.COSIGNATURE_BYTES
    assert int.from_bytes(sig.signature[:8], "big") == 1679315147


def test_verify_roundtrip_and_vkey() -> None:
    sig = cs.cosign(BODY, WITNESS, 1_700_000_123)
    ok = cs.verify_cosignature(BODY, sig, WITNESS.verifier)
    assert ok.timestamp == 1_700_000_123
    assert ok.witness == WITNESS.verifier
    vkey = cs.cosigner_vkey(WITNESS.verifier)
    name, key_id, blob = vkey.split("+", 2)
    assert name == WITNESS.name
    assert bytes.fromhex(key_id) == sig.key_id
    assert base64.b64decode(blob)[0] == 0x04


@pytest.mark.parametrize(
    "tamper",
    [
        lambda s: NoteSignature(s.name, s.key_id, (1).to_bytes(8, "big") + s.signature[8:]),
        lambda s: NoteSignature(s.name, s.key_id, s.signature[:-1] + bytes([s.signature[-1] ^ 1])),
        lambda s: NoteSignature(s.name, s.key_id, s.signature[:40]),
        lambda s: NoteSignature(OTHER.name, s.key_id, s.signature),
        lambda s: NoteSignature(s.name, WITNESS.verifier.key_id, s.signature),
        lambda s: NoteSignature(s.name, s.key_id, (2**63).to_bytes(8, "big") + s.signature[8:]),
    ],
    ids=["timestamp", "signature", "short", "name", "note-key-id", "timestamp-range"],
)
def test_tampered_cosignatures_are_refused(tamper) -> None:  # type: ignore[no-untyped-def]
    sig = cs.cosign(BODY, WITNESS, 1_700_000_000)
    with pytest.raises(VerificationError):
        cs.verify_cosignature(BODY, tamper(sig), WITNESS.verifier)


def test_a_cosignature_does_not_carry_over_to_another_checkpoint() -> None:
    sig = cs.cosign(BODY, WITNESS, 1_700_000_000)
    other = Checkpoint(CHECKPOINT.origin, 42, bytes(32), CHECKPOINT.extensions).to_text()
    with pytest.raises(VerificationError):
        cs.verify_cosignature(other, sig, WITNESS.verifier)
    # nor is the plain note signature of the same key a cosignature (domain separation)
    plain = NoteSignature(WITNESS.name, sig.key_id, bytes(8) + WITNESS.sign(BODY.encode()))
    with pytest.raises(VerificationError):
        cs.verify_cosignature(BODY, plain, WITNESS.verifier)


def test_cosigned_note_still_verifies_as_the_logs_checkpoint() -> None:
    cosigned = cs.add_signatures(
        NOTE, [cs.cosign(BODY, WITNESS, 1), cs.cosign(BODY, OTHER, 2), cs.cosign(BODY, WITNESS, 1)]
    )
    assert cosigned.count("\u2014 ") == 3  # the duplicate is not added twice
    assert verify_checkpoint(cosigned, [LOG.verifier], origin=LOG.name) == CHECKPOINT
    found = cs.cosignatures(cosigned, [WITNESS.verifier, OTHER.verifier])
    assert {(c.witness.name, c.timestamp) for c in found} == {(WITNESS.name, 1), (OTHER.name, 2)}
    assert cs.cosignatures(cosigned, [NoteVerifier("stranger", bytes(32))]) == []


def test_a_bad_line_under_a_known_witness_is_an_error_not_skipped() -> None:
    good = cs.cosign(BODY, WITNESS, 5)
    bad = NoteSignature(good.name, good.key_id, good.signature[:-1] + b"\x00")
    with pytest.raises(VerificationError):
        cs.cosignatures(cs.add_signatures(NOTE, [bad]), [WITNESS.verifier])


@pytest.mark.parametrize("timestamp", [-1, 2**63, True])
def test_out_of_range_timestamps_are_malformed(timestamp: int) -> None:
    with pytest.raises(MalformedInput):
        cs.cosign(BODY, WITNESS, timestamp)


def test_malformed_inputs() -> None:
    with pytest.raises(MalformedInput):
        cs.signed_message("no newline", 1)
    with pytest.raises(MalformedInput):
        cs.cosigner_key_id("bad name", bytes(32))
    with pytest.raises(MalformedInput):
        cs.parse_line("\u2014 a AAAA\n\u2014 b AAAA")
