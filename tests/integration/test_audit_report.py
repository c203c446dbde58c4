"""`accord audit report` over real processes, opened in headless Chromium.

Chromium (Debian's ``chromium`` package; ``make test`` installs it when missing) loads the
report from disk with background networking off. The page's own script records on ``<body>``
how many of its images decoded; ``--dump-dom`` after a virtual-time budget shows that, and the
tables, as the browser built them. A screenshot is kept in the test's tmp folder.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import in_ci
from matplotlib.image import imread

from accord.launcher import LocalNetwork

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium is not installed (`make chromium` installs Debian's package)"
        if in_ci():
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return found


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def audit(network: LocalNetwork, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "accord",
            "audit",
            *args,
            "--coordinator",
            network.parties["coordinator"].endpoint,
            "--pki",
            str(network.pki_dir / "auditor"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_report_renders_in_headless_chromium(aligned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    chromium()
    old = tmp_path / "old.note"
    assert audit(network, "checkpoint", "--save", str(old)).returncode == 0
    cosigned = tmp_path / "cosigned.note"
    done = audit(network, "checkpoint", "--witnesses", "4", "--save", str(cosigned))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "report"
    made = audit(
        network, "report", "--out", str(out), "--checkpoint", str(cosigned), "--old", str(old)
    )
    assert made.returncode == 0, made.stderr
    assert "no violations" in made.stdout and "4 cosignatures" in made.stdout
    page = out / "report.html"
    source = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", source)  # nothing to fetch

    dom = browse(page, tmp_path / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body[^>]*>", dom.stdout)
    assert body, dom.stdout[:2000]
    images = re.search(r'data-images="(\d+)"', body[0])
    rendered = re.search(r'data-rendered="(\d+)"', body[0])
    assert images and rendered, body[0]
    assert int(images[1]) == 3
    assert int(rendered[1]) == 3, "an image did not decode in the browser"
    for anchor in ("checkpoint", "witnesses", "violations", "consents", "uses", "policies"):
        assert f'<section id="{anchor}">' in dom.stdout
    purpose_table = re.search(r'<div id="uses-by-purpose">(.*?)</div>', dom.stdout, re.S)
    assert purpose_table and "<td>model-training</td>" in purpose_table[1]
    node_table = re.search(r'<div id="uses-by-node">(.*?)</div>', dom.stdout, re.S)
    assert node_table and all(f"<td>{n}</td>" in node_table[1] for n in ("pay", "shop", "label"))
    assert "No violations." in dom.stdout
    policies = re.search(r'<section id="policies">(.*?)</section>', dom.stdout, re.S)
    assert policies  # "none recorded", or the coordinator's recorded policy in force
    assert "none recorded" in policies[1] or '<span class="ok">yes</span>' in policies[1]
    assert dom.stdout.count("cosigned this very tree") == 4
    assert "extends your checkpoint" in dom.stdout

    shot = tmp_path / "report.png"
    taken = browse(
        page, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1280,2600"
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    pixels = imread(str(shot))
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    # not a blank page: the header band, the plots' colours and text vary the pixels
    assert float(np.std(pixels[..., :3])) > 0.05


def test_unwritable_report_folder_is_one_readable_line(aligned, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    network, _ = aligned
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = audit(network, "report", "--out", str(blocker / "report"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot write the report to" in lines[0]
    if os.geteuid() != 0:  # root writes into read-only folders
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        try:
            result = audit(network, "report", "--out", str(folder))
        finally:
            folder.chmod(0o700)
        assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
