"""`accord demo` end to end, then P5 over what it left: no identifier in any ledger entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from identifier_scan import needles, scan
from sqlalchemy import create_engine, text


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_no_identifier_reaches_the_ledger_in_a_full_demo_run(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "accord", "demo", "--workdir", str(workdir), "--customers", "400"],
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 of 4" in result.stdout and "revocation honoured" in result.stdout
    wanted = needles(workdir)
    engine = create_engine(f"sqlite:///{workdir / 'coordinator' / 'coordinator.db'}")
    with engine.connect() as conn:
        entries = [bytes(r[0]) for r in conn.execute(text("SELECT data FROM ledger_entry"))]
    kinds = b"\x00".join(entries)
    # consents, training uses, the model, scoring uses and a revocation are all in there
    for kind in (b"consent.granted", b"consent.revoked", b"data.use", b"model.version"):
        assert kind in kinds, kind
    assert scan(kinds, wanted) == []
    tiles = [p.read_bytes() for p in (workdir / "coordinator" / "tiles").rglob("*") if p.is_file()]
    assert tiles and scan(b"\x00".join(tiles), wanted) == []
