"""Lifetime value end to end across real processes, through the CLI a partner would use.

Channels import their own purchase logs (`accord node import --as-of`), consents arrive,
`accord align` matches them to the brand's spend labels, `accord train --model ltv` learns the
ZILN head over masked sums, and a marketer's score names an expected spend with its interval
and the action the policy picks from it (issue 8, item 5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from networks import cli
from sqlalchemy import create_engine, text

from accord.launcher import LocalNetwork
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.touchpoint import ask, subject


def _held_by_two_channels(network: LocalNetwork, count: int) -> list[str]:
    return _brand_refs(network, count, holders=(3, 4))  # the label and two or three channels


def _brand_refs(network: LocalNetwork, count: int, holders: tuple[int, int]) -> list[str]:
    """Brand references of aligned customers whose number of holders (the label node
    included) lies in ``holders`` (inclusive)."""
    coord = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with coord.connect() as conn:
        run = conn.execute(
            text("SELECT alignment_run FROM model_version WHERE kind = 'ltv' LIMIT 1")
        ).scalar()
        keys = [
            bytes(r[0])
            for r in conn.execute(
                text(
                    "SELECT row_key FROM aligned_row WHERE run_id = :r GROUP BY row_key "
                    "HAVING COUNT(*) BETWEEN :lo AND :hi"
                ),
                {"r": run, "lo": holders[0], "hi": holders[1]},
            )
        ]
    coord.dispose()
    label = create_engine(f"sqlite:///{network.node_dir('label') / 'node.db'}")
    with label.connect() as conn:
        refs = [
            conn.execute(
                text("SELECT local_ref FROM alignment_row WHERE run_id = :r AND row_key = :k"),
                {"r": run, "k": k},
            ).scalar()
            for k in keys[: count * 2]
        ]
    label.dispose()
    return [str(r) for r in refs if r][:count]


def test_a_score_on_an_ltv_network_gives_spend_its_interval_and_the_action(
    ltv_network: tuple[LocalNetwork, Path],
) -> None:
    network, _ = ltv_network
    creds = PartyCredentials.load(network.pki_dir / "marketer")
    channel = creds.channel(network.parties["coordinator"].endpoint, COORDINATOR)
    stub = scoring_pb2_grpc.ScoringStub(channel)
    refs = _held_by_two_channels(network, 5)
    assert len(refs) == 5
    answers = [ask(stub, "checkout", subject(ref), "marketing") for ref in refs]
    scored = [a for a in answers if a.scored]
    assert len(scored) >= 3, [a.explanation for a in answers]
    for a in scored:
        assert not a.HasField("trust") and a.HasField("ltv")
        assert a.ltv > 0 and 0 <= a.ltv_low <= a.ltv_high
        assert a.model.startswith("ltv-") and len(a.sources) >= 2
        assert a.action == ("trial-sample" if a.ltv >= 100 else "ingredient-video")
        assert "LTV" in a.explanation and "checkout-" in a.explanation
    channel.close()
    # the CLI shows it the same way
    shown = cli(
        "score",
        "--touchpoint",
        "checkout",
        "--ref",
        refs[0],
        "--coordinator",
        network.parties["coordinator"].endpoint,
        "--pki",
        str(network.pki_dir / "marketer"),
    )
    assert shown.returncode == 0, shown.stderr
    assert "LTV" in shown.stdout and "80 % interval" in shown.stdout


def test_a_customer_one_channel_holds_gets_that_channels_own_estimate_scaled(
    ltv_network: tuple[LocalNetwork, Path],
) -> None:
    """Below k the shared model cannot answer without exposing the one channel (P2); the LTV
    answer is then that channel's own estimate times the model's factor for it, says so, and
    has no interval."""
    network, _ = ltv_network
    coord = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with coord.connect() as conn:
        stored = conn.execute(
            text("SELECT own_channel_scales FROM model_version WHERE kind = 'ltv'")
        ).scalar()
    coord.dispose()
    scales = json.loads(str(stored))
    assert set(scales) == {"app", "web", "store"}, scales
    assert all(0.1 < v < 10 for v in scales.values()), scales

    creds = PartyCredentials.load(network.pki_dir / "marketer")
    channel = creds.channel(network.parties["coordinator"].endpoint, COORDINATOR)
    stub = scoring_pb2_grpc.ScoringStub(channel)
    refs = _brand_refs(network, 12, holders=(2, 2))  # the label and one channel
    assert len(refs) == 12
    answers = [ask(stub, "checkout", subject(ref), "marketing") for ref in refs]
    channel.close()
    scored = [a for a in answers if a.scored]
    assert len(scored) >= 4, [a.explanation for a in answers]
    for a in scored:
        assert a.HasField("ltv") and not a.HasField("ltv_low") and not a.HasField("trust")
        (source,) = a.sources
        assert a.ltv >= 0 and a.confidence == pytest.approx(round(1 / 3, 2))
        assert f"{source}'s own estimate" in a.explanation
        assert f"scaled by {scales[source]:.3f}" in a.explanation
        assert a.action == ("trial-sample" if a.ltv >= 100 else "ingredient-video")
        assert len(a.receipt.use_indexes) == 1  # the one channel's data use, on the ledger
    for a in answers:
        if not a.scored:  # the one channel holds no consent for marketing: nothing to answer
            assert "cannot score" in a.explanation, a.explanation
    # the CLI shows it as the one channel's own estimate, without an interval
    lone = next(ref for ref, a in zip(refs, answers, strict=True) if a.scored)
    shown = cli(
        "score",
        "--touchpoint",
        "checkout",
        "--ref",
        lone,
        "--coordinator",
        network.parties["coordinator"].endpoint,
        "--pki",
        str(network.pki_dir / "marketer"),
    )
    assert shown.returncode == 0, shown.stderr
    assert "own estimate, scaled" in shown.stdout and "80 % interval" not in shown.stdout
