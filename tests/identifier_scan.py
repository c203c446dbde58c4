"""Looking for a data set's identifiers (in every spelling, and their hashes) in bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from accord.crypto.psi import (
    Identifier,
    hash_to_points,
    identifier_hash,
    normalize_email,
    normalize_phone,
)
from accord.data.channel_file import read_channel_table

CHANNELS = ("pay", "shop", "social", "label")


def needles(workdir: Path) -> dict[bytes, str]:
    """Every identifier of the data set in every form worth looking for, and their hashes."""
    found: dict[bytes, str] = {}
    hashes: list[bytes] = []
    for channel in CHANNELS:
        t = read_channel_table(workdir / "data" / f"{channel}.csv")
        for ref, phone, email in zip(t.refs, t.phones, t.emails, strict=True):
            e164 = normalize_phone(phone, country_code="886")
            mail = normalize_email(email)
            for form in (ref, phone, email, e164, mail, e164[1:]):
                found[form.encode()] = f"{channel}:{form}"
            for ident in (Identifier("phone", e164), Identifier("email", mail)):
                digest = identifier_hash(ident)
                hashes.append(digest)
                found[digest] = f"identifier hash of {ident.kind}"
                found[hashlib.sha256(ident.value.encode()).digest()] = "sha256 of an identifier"
    for point in hash_to_points(hashes):
        found[point] = "an unblinded identifier point"
    return found


def scan(blob: bytes, wanted: dict[bytes, str]) -> list[str]:
    prefixes: dict[bytes, list[bytes]] = {}
    for needle in wanted:
        prefixes.setdefault(needle[:8], []).append(needle)
    hits = []
    for i in range(len(blob) - 7):
        candidates = prefixes.get(blob[i : i + 8])
        if candidates:
            hits.extend(wanted[n] for n in candidates if blob.startswith(n, i))
    return hits
