"""accord.auditing.trail: an opening finds exactly its customer's entries; bad openings fail."""

from __future__ import annotations

import base64
import json
from hashlib import sha256
from pathlib import Path

import pytest

from accord.auditing.entries import decode_entry
from accord.auditing.trail import parse_opening, read_opening, subject_trail
from accord.consent.events import ConsentGranted, ConsentRevoked, DataUse, Use, encode
from accord.crypto.commitment import Opening
from accord.errors import InvalidInput

SALT = bytes(range(32))
OPENING = Opening("pay", "cust-7", SALT)
ME = OPENING.subject()
OTHER = Opening("pay", "cust-8", SALT).subject()
C1, C2 = sha256(b"c1").digest(), sha256(b"c2").digest()
DOC = {"node": "pay", "localRef": "cust-7", "salt": base64.b64encode(SALT).decode()}


def test_trail_lists_grants_revocations_and_uses_of_this_subject_only() -> None:
    events = [
        ConsentGranted("pay", ME, C1, ("model-training",), 2_000_000_000, 100),
        ConsentGranted("pay", OTHER, C2, ("model-training",), 2_000_000_000, 101),
        DataUse("pay", "model-training", "run-1", 102, (Use(OTHER, C2, 1), Use(ME, C1, 0))),
        DataUse("pay", "model-training", "run-2", 103, (Use(OTHER, C2, 1),)),
        ConsentRevoked("pay", ME, C1, 104, "withdrawn"),
    ]
    trail = subject_trail([decode_entry(i, encode(e)) for i, e in enumerate(events)], ME)
    assert [(t.index, t.event) for t in trail] == [
        (0, "consent granted"),
        (2, "data use"),
        (4, "consent revoked"),
    ]
    assert trail[1].purposes == ("model-training",)
    assert "grant at entry 0" in trail[1].detail
    assert trail[2].detail == "withdrawn"


def test_opening_from_the_object_or_the_whole_export(tmp_path: Path) -> None:
    assert parse_opening(DOC, "x").subject() == ME
    assert parse_opening({"node": "pay", "opening": DOC, "uses": []}, "x").subject() == ME
    path = tmp_path / "opening.json"
    path.write_text(json.dumps(DOC))
    assert read_opening(path).subject() == ME


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        json.dumps({"node": "pay", "localRef": "cust-7"}),
        json.dumps({**DOC, "salt": "***"}),
        json.dumps({**DOC, "salt": base64.b64encode(b"short").decode()}),
        json.dumps({**DOC, "node": 3}),
        json.dumps({"opening": None, "node": "pay"}),
    ],
    ids=["json", "list", "missing", "base64", "salt-length", "type", "erased"],
)
def test_bad_openings_fail_with_one_line(tmp_path: Path, content: str) -> None:
    path = tmp_path / "opening.json"
    path.write_text(content)
    with pytest.raises(InvalidInput) as err:
        read_opening(path)
    assert str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        read_opening(tmp_path / "nope.json")
