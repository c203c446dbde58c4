"""The signed-note example from the C2SP specification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from accord.crypto import note
from accord.crypto.errors import MalformedInput, VerificationError
from accord.crypto.keys import NoteSigner, NoteVerifier


@pytest.fixture
def example(vectors_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (vectors_dir / "c2sp-signed-note" / "example.json").read_text()
    )
    assert data["expect"] == "verifies"
    return data


def test_example_verifies(example: dict[str, Any]) -> None:
    verifier = NoteVerifier.parse(example["verifier_key"])
    assert verifier.encode() == example["verifier_key"]
    verified = note.verify_note(example["note"], [verifier])
    assert verified.text == "This is an example message.\n"
    assert verified.verified_by == (verifier,)
    assert note.Note.parse(example["note"]).encode() == example["note"]


def test_example_with_a_cosignature_still_verifies(example: dict[str, Any]) -> None:
    verifier = NoteVerifier.parse(example["verifier_key"])
    witness = NoteSigner("example.com/witness", bytes(range(32)))
    text = note.verify_note(example["note"], [verifier]).text
    cosigned = example["note"] + note.sign_note(text, [witness]).split("\n\n", 1)[1]
    verified = note.verify_note(cosigned, [verifier, witness.verifier])
    assert set(verified.verified_by) == {verifier, witness.verifier}
    assert note.verify_note(cosigned, [verifier]).verified_by == (verifier,)


def test_every_single_bit_flip_is_rejected(example: dict[str, Any]) -> None:
    verifier = NoteVerifier.parse(example["verifier_key"])
    data = example["note"].encode()
    for pos in range(len(data)):
        for bit in range(8):
            changed = bytearray(data)
            changed[pos] ^= 1 << bit
            with pytest.raises((MalformedInput, VerificationError)):
                note.verify_note(bytes(changed), [verifier])
