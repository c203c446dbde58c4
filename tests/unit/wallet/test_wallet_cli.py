"""`accord wallet`: init, request, accept, list, present and verify through the CLI, with the
file kept private and one readable line for each refusal."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest

from accord.cli.main import run
from accord.consent import credential as cred
from accord.crypto import bbs

SK = bbs.key_gen(b"shop channel cli-test key material, 32+ bytes", b"shop")
PK = bbs.sk_to_pk(SK)
NONCE = "ab" * 16


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(err: str, needle: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("accord: error: "), err
    assert needle in lines[0], lines[0]


def test_wallet_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wallet = tmp_path / "wallet.json"
    assert _run(capsys, "wallet", "init", "--wallet", str(wallet))[0] == 0
    assert stat.S_IMODE(wallet.stat().st_mode) == 0o600
    code, _, err = _run(capsys, "wallet", "init", "--wallet", str(wallet))
    assert code == 1
    _one_line_error(err, "never overwritten")

    code, out, _ = _run(capsys, "wallet", "request", "--wallet", str(wallet), "--channel", "shop")
    asked = json.loads(out)
    assert code == 0 and asked["channel"] == "shop"
    # the channel's side, with the library
    now = int(time.time())
    fields = cred.CredentialFields(
        "shop", cred.credential_expiry(now, now + 30 * cred.DAY), "2026-09", "TW", ("marketing",)
    )
    signature, messages = cred.issue(SK, PK, bytes.fromhex(asked["commitment"]), fields)
    answer = tmp_path / "issued.json"
    answer.write_text(
        json.dumps(
            {
                "requestId": asked["requestId"],
                "publicKey": PK.hex(),
                "signature": signature.hex(),
                "messages": [m.hex() for m in messages],
            }
        )
    )
    before = wallet.read_bytes()
    forged = tmp_path / "forged.json"
    forged.write_text(answer.read_text().replace(signature.hex()[-8:], "00000000"))
    code, _, err = _run(
        capsys, "wallet", "accept", "--wallet", str(wallet), "--credential", str(forged)
    )
    assert code == 1 and wallet.read_bytes() == before  # bad input changes nothing
    assert (
        _run(capsys, "wallet", "accept", "--wallet", str(wallet), "--credential", str(answer))[0]
        == 0
    )

    code, out, _ = _run(capsys, "wallet", "list", "--wallet", str(wallet))
    listed = json.loads(out)
    assert listed["credentials"] == [
        {"channel": "shop", "expiresAt": fields.expires_at, "purposes": ["marketing"]}
    ]
    assert holder_secret_not_in(out, wallet)

    present = ["wallet", "present", "--wallet", str(wallet), "--channel", "shop"]
    code, out, _ = _run(
        capsys, *present, "--purpose", "marketing", "--nonce", NONCE, "--audience", "pay"
    )
    assert code == 0
    shown = tmp_path / "shown.json"
    shown.write_text(out)
    verify = ["wallet", "verify", "--presentation", str(shown), "--public-key", PK.hex()]
    verify += ["--channel", "shop", "--audience", "pay"]
    code, out, _ = _run(capsys, *verify, "--purpose", "marketing", "--nonce", NONCE)
    assert (code, out.strip()) == (0, "ok")
    code, _, err = _run(capsys, *verify, "--purpose", "marketing", "--nonce", "cd" * 16)
    assert code == 1
    _one_line_error(err, "does not verify")
    code, _, err = _run(
        capsys, *present, "--purpose", "risk-scoring", "--nonce", NONCE, "--audience", "pay"
    )
    assert code == 1
    _one_line_error(err, "does not cover")


def holder_secret_not_in(output: str, wallet: Path) -> bool:
    return json.loads(wallet.read_text())["holder_secret"] not in output


def test_a_missing_wallet_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "wallet", "list", "--wallet", str(tmp_path / "none.json"))
    assert code == 1
    _one_line_error(err, "accord wallet init")
