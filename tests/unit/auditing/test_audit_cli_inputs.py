"""Bad inputs to the audit commands fail with one readable line, before any network call."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.cli.main import run
from accord.crypto.note import Checkpoint, sign_checkpoint
from accord.pki_layout import load_coordinator_signer

UNREACHABLE = "127.0.0.1:9"  # nothing listens: a command that got this far would say so


def fails_with_one_line(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert run(list(argv)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("accord: error: ")
    assert "unreachable" not in lines[0]
    return lines[0]


def test_bad_checkpoint_files(
    pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = load_coordinator_signer(pki_dir / "coordinator")
    note = sign_checkpoint(Checkpoint(signer.name, 3, bytes(32)), [signer])
    (tmp_path / "truncated.note").write_text(note[:-30])
    (tmp_path / "binary.note").write_bytes(b"\xff\xfe\x00")
    other = sign_checkpoint(Checkpoint("elsewhere/log", 3, bytes(32)), [signer])
    (tmp_path / "other-log.note").write_text(other)
    common = ("--coordinator", UNREACHABLE, "--pki", str(pki_dir / "auditor"))
    for name in ("truncated.note", "binary.note", "other-log.note", "absent.note", "."):
        path = tmp_path / name
        for command in (
            ("audit", "violations", "--checkpoint", str(path)),
            ("audit", "checkpoint", "--witnesses", "2", "--note", str(path)),
            ("audit", "report", "--out", str(tmp_path / "out"), "--checkpoint", str(path)),
        ):
            message = fails_with_one_line(capsys, *command, *common)
            assert str(path) in message, message


def test_bad_openings_and_report_folders(
    pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ("--coordinator", UNREACHABLE, "--pki", str(pki_dir / "auditor"))
    (tmp_path / "opening.json").write_text('{"node": "pay", "localRef": "x", "salt": "!!"}')
    for path in (tmp_path / "opening.json", tmp_path, tmp_path / "absent.json"):
        message = fails_with_one_line(capsys, "audit", "trail", "--opening", str(path), *common)
        assert str(path) in message
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (blocker, blocker / "below"):
        message = fails_with_one_line(capsys, "audit", "report", "--out", str(out), *common)
        assert "cannot write the report" in message
