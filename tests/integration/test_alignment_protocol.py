"""PSI alignment is exact: compared with a plain set intersection of normalised identifiers."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from inprocess import Network, build
from sqlmodel import Session, select

from accord.crypto.psi import normalize_phone
from accord.data.channel_file import ChannelTable
from accord.node.models import AlignmentRow

TRAINING = ("model-training",)


def phone(i: int, style: int) -> str:
    digits = f"9{(i * 7919) % 10**8:08d}"
    return [
        f"+886{digits}",
        f"0{digits[:3]}-{digits[3:6]}-{digits[6:]}",
        f"+886 {digits[:3]} {digits[3:6]} {digits[6:]}",
    ][style % 3]


def table(channel: str, people: list[int], style: int, dupes: list[int] = ()) -> ChannelTable:  # type: ignore[assignment]
    ids = [*people, *dupes]
    refs = [f"{channel}-{n}-{i}" for n, i in enumerate(ids)]
    kind = "bool" if channel == "label" else "float"
    return ChannelTable(
        channel,
        refs,
        [phone(i, style) for i in ids],
        [f"p{i}@example.com" for i in ids],
        {"y" if channel == "label" else "x": kind},
        np.array([[i % 2] for i in ids], dtype=float),
    )


def rows_of(net: Network, channel: str) -> dict[bytes, str]:
    with Session(net.nodes[channel].node.engine) as session:
        return {r.row_key: r.local_ref for r in session.exec(select(AlignmentRow)).all()}


def run(
    tmp: Path,
    pki: Path,
    label: ChannelTable,
    channels: dict[str, ChannelTable],
    consents: dict[str, dict[str, tuple[str, ...]]],
):  # type: ignore[no-untyped-def]
    net = build(tmp, pki, {"label": label, **channels}, consents)
    try:
        result = net.orchestrator.run()
        label_rows = rows_of(net, "label")
        pairs = {
            c: {
                (label_rows[lk], rows_of(net, c)[keys[c]])
                for lk, keys in result.joined.items()
                if c in keys
            }
            for c in channels
        }
        return result, pairs
    finally:
        net.stop()


def expected_pairs(
    label: ChannelTable, other: ChannelTable, consented: dict[str, set[str]]
) -> set[tuple[str, str]]:
    def by_phone(t: ChannelTable) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ref, p in zip(t.refs, t.phones, strict=True):
            if ref in consented[t.channel]:
                out.setdefault(normalize_phone(p, country_code="886"), []).append(ref)
        return {k: v for k, v in out.items() if len(v) == 1}  # ambiguous identifiers stay out

    lp, op = by_phone(label), by_phone(other)
    return {(lp[k][0], op[k][0]) for k in lp.keys() & op.keys()}


@pytest.mark.parametrize("overlap", [0.0, 0.5, 1.0])
def test_intersection_is_exact(tmp_path: Path, pki_dir: Path, overlap: float) -> None:
    rng = random.Random(int(overlap * 10))
    brand = list(range(1000, 1200))
    shared = rng.sample(brand, int(len(brand) * overlap))
    strangers = list(range(5000, 5000 + 200 - len(shared)))
    label = table("label", brand, style=0)
    pay = table("pay", shared + strangers, style=1)  # national format: normalises equal
    consents = {t.channel: dict.fromkeys(t.refs, TRAINING) for t in (label, pay)}
    result, pairs = run(tmp_path, pki_dir, label, {"pay": pay}, consents)
    want = expected_pairs(label, pay, {c: set(v) for c, v in consents.items()})
    assert len(want) == len(shared)
    assert pairs["pay"] == want
    assert result.channels["pay"] == (200, len(shared))


def test_duplicates_and_consent_filter(tmp_path: Path, pki_dir: Path) -> None:
    brand = list(range(1, 101))
    label = table("label", brand, style=0, dupes=[7])  # two brand customers share one phone
    shop = table(
        "shop", list(range(50, 151)), style=2, dupes=[60, 60]
    )  # three shop rows, one phone
    social = table("social", list(range(1, 101)), style=1)
    no_training = set(social.refs[:30])  # gave consent, but not for model training
    consents = {
        "label": dict.fromkeys(label.refs, TRAINING),
        "shop": dict.fromkeys(shop.refs, TRAINING),
        "social": {r: (("marketing",) if r in no_training else TRAINING) for r in social.refs},
    }
    result, pairs = run(tmp_path, pki_dir, label, {"shop": shop, "social": social}, consents)
    consented = {c: {r for r, p in v.items() if "model-training" in p} for c, v in consents.items()}
    for channel, t in (("shop", shop), ("social", social)):
        assert pairs[channel] == expected_pairs(label, t, consented)
    assert not any(ref in no_training for _, ref in pairs["social"])
    assert all(ref not in {label.refs[6], label.refs[-1]} for ref, _ in pairs["shop"])  # phone 7
    assert result.rows == len({lk for lk in result.joined})
