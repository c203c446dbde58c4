"""`accord audit trail` over real processes: a customer's opening finds their whole trail."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from accord.launcher import LocalNetwork


def accord(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "accord", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "220"},
    )


def trail(network: LocalNetwork, opening: Path) -> subprocess.CompletedProcess[str]:
    return accord(
        "audit",
        "trail",
        "--opening",
        str(opening),
        "--coordinator",
        network.parties["coordinator"].endpoint,
        "--pki",
        str(network.pki_dir / "auditor"),
    )


def rows(stdout: str) -> list[list[str]]:
    found = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("\u2502")[1:-1]]
        if cells and cells[0].isdigit():
            found.append(cells)
    return found


def exported(network: LocalNetwork, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    engine = create_engine(f"sqlite:///{network.node_dir('shop') / 'node.db'}")
    with engine.connect() as conn:
        ref = conn.execute(text("SELECT local_ref FROM alignment_row LIMIT 1")).scalar()
    engine.dispose()
    time.sleep(0.7)  # let a checkpoint cover the latest entries
    out = tmp_path / "export.json"
    done = accord(
        "subject",
        "export",
        "--ref",
        str(ref),
        "--out",
        str(out),
        "--node",
        network.parties["shop"].endpoint,
        "--pki",
        str(network.pki_dir / "shop"),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_trail_lists_the_customers_consents_and_uses_with_proofs(aligned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    doc = exported(network, tmp_path)
    opening = tmp_path / "opening.json"
    opening.write_text(json.dumps(doc["opening"]))
    result = trail(network, opening)
    assert result.returncode == 0, result.stderr
    assert "every inclusion proof verified" in " ".join(result.stdout.split())
    table = rows(result.stdout)
    grants = {c["grantIndex"] for c in doc["consents"] if c["grantIndex"] is not None}
    uses = {u["ledgerIndex"] for u in doc["uses"]}
    assert grants and uses
    assert {int(r[0]) for r in table if r[2] == "consent granted"} == grants
    assert {int(r[0]) for r in table if r[2] == "data use"} == uses
    assert all(r[4] == "shop" for r in table)
    assert {r[3] for r in table if r[2] == "data use"} == {u["purpose"] for u in doc["uses"]}
    # the whole export works as well as its opening object
    assert rows(trail(network, tmp_path / "export.json").stdout) == table


def test_a_wrong_opening_is_one_readable_line(aligned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    doc = exported(network, tmp_path)
    other_salt = bytes(b ^ 0xFF for b in base64.b64decode(doc["opening"]["salt"]))
    cases = {  # more malformed openings: tests/unit/auditing/test_trail_opening.py
        "wrong-salt": json.dumps({**doc["opening"], "salt": base64.b64encode(other_salt).decode()}),
        "not-base64": json.dumps({**doc["opening"], "salt": "%%%"}),
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(content)
        result = trail(network, path)
        assert result.returncode != 0, name
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (name, result.stderr)
        assert lines[0].startswith("accord: error:")
        if name.startswith("wrong"):
            assert "no entry up to checkpoint" in lines[0]
        else:
            assert str(path) in lines[0]
