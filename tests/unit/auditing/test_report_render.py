"""accord.auditing.report: a self-contained page with the figures, tables and verdicts."""

from __future__ import annotations

import base64
import os
import re
from hashlib import sha256
from pathlib import Path

import pytest

from accord.auditing.entries import decode_entry
from accord.auditing.report import ReportData, check_writable, render_report, write_report
from accord.auditing.violations import find_violations
from accord.auditing.witnesses import WitnessStatus
from accord.consent.events import ConsentGranted, ConsentRevoked, DataUse, Event, Record, Use
from accord.consent.events import encode as encode_event
from accord.crypto.cosignature import cosign, verify_cosignature
from accord.crypto.keys import NoteSigner
from accord.crypto.note import Checkpoint
from accord.errors import InvalidInput

T = 1_800_000_000
CP = Checkpoint("accord.test/coordinator", 6, bytes(range(32)), (f"accord-time {T}",))
WITNESS = NoteSigner.generate("pay")


def h(text: str) -> bytes:
    return sha256(text.encode()).digest()


def data(*events: Event) -> ReportData:
    items = [decode_entry(i, encode_event(e)) for i, e in enumerate(events)]
    cosignature = verify_cosignature(
        CP.to_text(), cosign(CP.to_text(), WITNESS, T), WITNESS.verifier
    )
    return ReportData(
        checkpoint=CP,
        note="(note)",
        generated_at=T + 60,
        events=items,
        violations=find_violations(items),
        cosignatures=[cosignature],
        witnesses=[
            WitnessStatus("pay", "consistent", "cosigned this very tree"),
            WitnessStatus("shop", "fork", "holds checkpoint 6 with root <x>"),
        ],
    )


LEDGER = (
    ConsentGranted("pay", h("s1"), h("c1"), ("model-training",), T * 2, T),
    ConsentGranted("shop", h("s2"), h("c2"), ("model-training", "marketing"), T * 2, T + 5),
    DataUse("pay", "model-training", "run", T + 10, (Use(h("s1"), h("c1"), 0),)),
    DataUse("shop", "marketing", "req", T + 20, (Use(h("s2"), h("c2"), 1),)),
    ConsentRevoked("pay", h("s1"), h("c1"), T + 30, "withdrawn"),
    DataUse("pay", "model-training", "late", T + 40, (Use(h("s1"), h("c1"), 0),)),
)


def test_page_is_self_contained_with_figures_tables_and_verdicts() -> None:
    page = render_report(data(*LEDGER))
    images = re.findall(r'<img src="([^"]+)"', page)
    assert len(images) == 3
    for uri in images:
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<link" not in page and "<script src" not in page
    assert "default-src 'none'" in page
    assert 'id="uses-by-purpose"' in page and 'id="uses-by-node"' in page
    assert "<td>marketing</td>" in page
    assert "1 violations" in page and "revoked at entry 4" in page
    assert "none recorded" in page
    assert "cosigned by" in page and "<td>pay</td>" in page
    assert 'class="bad">fork' in page
    assert "holds checkpoint 6 with root &lt;x&gt;" in page  # escaped


def test_policy_versions_in_force() -> None:
    page = render_report(
        data(
            Record("coordinator", "policy.version", T, {"policy": "touchpoint", "version": 1}),
            Record("coordinator", "policy.version", T + 1, {"policy": "touchpoint", "version": 2}),
            Record("coordinator", "policy.version", T + 2, {"policy": "credit", "version": 1}),
        )
    )
    assert "none recorded" not in page
    assert page.count("<td>superseded</td>") == 1
    assert page.count('<span class="ok">yes</span>') == 2
    assert "No violations." in page


def test_empty_ledger_still_renders() -> None:
    page = render_report(data())
    assert len(re.findall(r"<img ", page)) == 3
    assert "No violations." in page


def test_write_report_and_unwritable_folders(tmp_path: Path) -> None:
    target = write_report(tmp_path / "out", data(*LEDGER))
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "out" / "checkpoint.note").read_text() == "(note)"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for bad in (a_file, a_file / "below"):
        with pytest.raises(InvalidInput, match="cannot write the report") as err:
            check_writable(bad)
        assert "\n" not in str(err.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(InvalidInput, match="cannot write the report"):
            check_writable(folder)
    finally:
        folder.chmod(0o700)


def test_the_page_counts_consent_proofs_and_refusals() -> None:
    from accord.consent.events import UseRefused

    refusals = (
        UseRefused("pay", "marketing", T + 50, "replayed"),
        UseRefused("pay", "marketing", T + 51, "missing"),
        UseRefused("shop", "marketing", T + 52, "replayed"),
    )
    page = render_report(data(*LEDGER, *refusals))
    assert 'id="consent-proofs"' in page
    assert "consent proofs: 0 verified, 0 failed, 3 uses without a proof; 3 uses refused " in page
    assert "(missing 1, replayed 2)" in page
