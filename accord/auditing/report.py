"""The compliance officer's report: one self-contained HTML file anyone can open offline.

Everything is inline: the styles, the figures (PNG data URIs drawn with matplotlib's Agg
renderer, no GUI and no global pyplot state) and a few lines of script that record, on the
``<body>``, how many figures decoded (``data-rendered`` of ``data-images``), so a headless
browser can check the page really rendered. A Content-Security-Policy forbids every network
load, so the file cannot depend on one by accident.

:func:`render_report` is pure (data in, HTML out); :func:`write_report` is the only I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from accord.auditing.entries import LedgerEvent
from accord.auditing.violations import ViolationReport, proofs_summary
from accord.auditing.witnesses import WitnessStatus
from accord.consent.events import ConsentGranted, ConsentRevoked, DataUse, Record, SealedDataUse
from accord.crypto.cosignature import Cosignature
from accord.crypto.note import Checkpoint
from accord.errors import InvalidInput

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_FILE = "report.html"
CHECKPOINT_FILE = "checkpoint.note"
MAX_ROWS = 200
TIME_EXTENSION = "accord-time"
STATUS_EXTENSION = "accord-status"

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2733;
       margin: 0; background: #f4f6f8; }
header { background: #1d3557; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; } header p { margin: 4px 0 0; opacity: .85; }
main { padding: 16px 32px 40px; max-width: 1100px; }
section { background: #fff; border-radius: 8px; padding: 14px 20px; margin: 14px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h2 { font-size: 17px; margin: 4px 0 10px; }
table { border-collapse: collapse; margin: 6px 0 10px; }
th, td { text-align: left; padding: 4px 12px 4px 0; border-bottom: 1px solid #e3e7ec;
         vertical-align: top; }
th { color: #52606d; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
.ok { color: #1b7f3b; font-weight: 600; } .bad { color: #b42318; font-weight: 600; }
.muted { color: #7b8794; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { color: #52606d; font-size: 12px; }
img { max-width: 100%; border: 1px solid #e3e7ec; border-radius: 4px; }
"""
SCRIPT = """
window.addEventListener('load', function () {
  var images = document.images, rendered = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { rendered++; }
  }
  document.body.setAttribute('data-images', String(images.length));
  document.body.setAttribute('data-rendered', String(rendered));
});
"""


@dataclass(frozen=True)
class ReportData:
    checkpoint: Checkpoint
    note: str
    generated_at: int
    events: Sequence[LedgerEvent]
    violations: ViolationReport
    consistency: str | None = None  # the consistency check against an older checkpoint
    cosignatures: Sequence[Cosignature] = ()
    witnesses: Sequence[WitnessStatus] = ()


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _extension(checkpoint: Checkpoint, name: str) -> str | None:
    for line in checkpoint.extensions:
        key, _, value = line.partition(" ")
        if key == name:
            return value
    return None


def checkpoint_time(checkpoint: Checkpoint) -> int | None:
    value = _extension(checkpoint, TIME_EXTENSION)
    return int(value) if value is not None and value.isdigit() else None


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


class Markup(str):
    """HTML that is already safe (built here from escaped parts)."""


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: int = 0) -> str:
    """A table; the last ``numeric`` columns are right-aligned numbers."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="num"' if i >= len(row) - numeric else ""
            cells.append(f"<td{cls}>{cell if isinstance(cell, Markup) else _esc(cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _figure(uri: str, alt: str, caption: str) -> str:
    return (
        f'<figure><img src="{uri}" alt="{_esc(alt)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def consents_over_time(events: Sequence[LedgerEvent]) -> tuple[list[int], list[int], list[int]]:
    """(times, cumulative grants, cumulative revocations) at every consent event, in order."""
    times: list[int] = []
    granted: list[int] = []
    revoked: list[int] = []
    g = r = 0
    for item in sorted(
        (e for e in events if isinstance(e.event, ConsentGranted | ConsentRevoked)),
        key=lambda e: (e.event.at if e.event is not None else 0, e.index),
    ):
        if isinstance(item.event, ConsentGranted):
            g += 1
        else:
            r += 1
        assert item.event is not None
        times.append(item.event.at)
        granted.append(g)
        revoked.append(r)
    return times, granted, revoked


def _consent_plot(events: Sequence[LedgerEvent]) -> str:
    # imported here: every audit command loads this module, only a report draws charts
    from matplotlib.figure import Figure

    times, granted, revoked = consents_over_time(events)

    fig = Figure(figsize=(7.0, 3.0))
    ax = fig.add_subplot()
    if times:
        stamps = np.array(times, dtype="datetime64[s]")
        ax.step(stamps, granted, where="post", label="granted", color="#2a9d8f", linewidth=2)
        ax.step(stamps, revoked, where="post", label="revoked", color="#e76f51", linewidth=2)
        ax.legend(loc="upper left", frameon=False)
        fig.autofmt_xdate()
    else:
        ax.text(0.5, 0.5, "no consent events", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("consents (cumulative)")
    ax.set_title("Consents granted and revoked over time")
    ax.grid(alpha=0.3)
    return _png(fig)


def _bar_plot(counts: Counter[str], title: str, color: str) -> str:
    labels = sorted(counts, key=lambda k: (-counts[k], k))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 0.5 + 0.45 * max(len(labels), 1)))
    ax = fig.add_subplot()
    if labels:
        ax.barh(labels[::-1], [counts[k] for k in labels[::-1]], color=color)
        for y, label in enumerate(labels[::-1]):
            ax.text(counts[label], y, f" {counts[label]}", va="center", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no data uses", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_xlabel("uses (customers × sessions)")
    ax.set_title(title)
    ax.margins(x=0.15)
    return _png(fig)


def uses_by(events: Sequence[LedgerEvent], key: str) -> tuple[Counter[str], Counter[str]]:
    """(uses, data.use events) per purpose or per node."""
    uses: Counter[str] = Counter()
    entries: Counter[str] = Counter()
    for item in events:
        if isinstance(item.event, DataUse | SealedDataUse):
            name = item.event.purpose if key == "purpose" else item.event.node
            uses[name] += len(item.event.uses)
            entries[name] += 1
    return uses, entries


def policy_versions(events: Sequence[LedgerEvent]) -> list[tuple[LedgerEvent, bool]]:
    """Every policy.version record, each with whether it is the one in force for its policy.

    The newest record of a policy (its body's ``policy`` or ``name``, else one policy) is the
    one in force.
    """
    records = [
        e for e in events if isinstance(e.event, Record) and e.event.kind == "policy.version"
    ]
    newest: dict[str, int] = {}
    for item in records:
        assert isinstance(item.event, Record)
        newest[_policy_name(item.event)] = item.index
    return [
        (item, newest[_policy_name(item.event)] == item.index)  # type: ignore[arg-type]
        for item in records
    ]


def _policy_name(record: Record) -> str:
    for key in ("policy", "name"):
        value = record.body.get(key)
        if isinstance(value, str):
            return value
    return "policy"


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{body}</section>'


def _checkpoint_section(cp: Checkpoint) -> str:
    status_root = _extension(cp, STATUS_EXTENSION)
    rows = [
        ("origin", _code(cp.origin)),
        ("size", f"{cp.size} entries"),
        ("root hash", _code(base64.b64encode(cp.root_hash).decode())),
        ("signed at", _when(checkpoint_time(cp))),
        ("consent status-map root", _code(status_root) if status_root else "none"),
        ("signature", Markup('<span class="ok">verified</span> with the coordinator key')),
        ("entries re-hashed", Markup('<span class="ok">all</span> reproduce the signed root')),
    ]
    return _section("Verified checkpoint", _table(("", ""), rows), "checkpoint")


def _code(text: str) -> Markup:
    return Markup(f"<code>{_esc(text)}</code>")


def _state(state: str) -> Markup:
    cls = {"fork": "bad", "invalid": "bad", "consistent": "ok"}.get(state, "muted")
    return Markup(f'<span class="{cls}">{_esc(state)}</span>')


def _trust_section(data: ReportData) -> str:
    parts = []
    if data.consistency:
        parts.append(f"<p>{_esc(data.consistency)}</p>")
    else:
        parts.append(
            '<p class="muted">No earlier checkpoint was given: pass <code>--old FILE</code> to '
            "prove this log extends one you saved.</p>"
        )
    if data.cosignatures:
        rows = [(c.witness.name, _when(c.timestamp)) for c in data.cosignatures]
        parts.append(_table(("cosigned by", "at"), rows))
    else:
        parts.append(
            '<p class="muted">This checkpoint carries no cosignatures: save one with '
            "<code>accord audit checkpoint --witnesses K --save FILE</code>.</p>"
        )
    if data.witnesses:
        rows_w = [(w.witness, _state(w.state), w.detail) for w in data.witnesses]
        parts.append(_table(("witness", "state", "detail"), rows_w))
    return _section("Consistency and witnesses", "".join(parts), "witnesses")


def _violations_section(report: ViolationReport) -> str:
    if report.clean:
        body = (
            f'<p><span class="ok">No violations.</span> {report.uses_checked} uses in '
            f"{report.use_events} data-use entries were each covered by a consent granted at "
            "the cited entry, by the same node, for that purpose, unexpired and unrevoked at "
            "the time.</p>"
        )
    else:
        shown = ", ".join(str(i) for i in report.violating_entries()[:50])
        rows = [(v.index, v.node, v.purpose, v.problem) for v in report.violations[:MAX_ROWS]]
        body = (
            f'<p><span class="bad">{len(report.violations)} violations</span> in entries '
            f"{_esc(shown)} (of {report.uses_checked} uses checked).</p>"
            + _table(("entry", "node", "purpose", "what is wrong"), rows)
        )
    body += _proofs_paragraph(report)
    if report.unreadable:
        listed = ", ".join(str(i) for i, _ in report.unreadable[:20])
        body += (
            f'<p class="bad">{len(report.unreadable)} entries are not well-formed Accord events: '
            f"{_esc(listed)}.</p>"
        )
    return _section("Violations (independent replay)", body, "violations")


def _proofs_paragraph(report: ViolationReport) -> str:
    cls = "bad" if report.proofs_failed else "ok"
    return (
        f'<p id="consent-proofs"><span class="{cls}">{_esc(proofs_summary(report))}</span>. '
        "Each proof was checked against the issuer key its node published on the ledger.</p>"
    )


def _uses_section(events: Sequence[LedgerEvent]) -> str:
    parts = []
    figures = []
    for key, color in (("purpose", "#457b9d"), ("node", "#e9c46a")):
        uses, entries = uses_by(events, key)
        caption = f"{sum(uses.values())} uses in {sum(entries.values())} data-use entries"
        figures.append(_figure(_bar_plot(uses, f"Uses by {key}", color), f"uses by {key}", caption))
        rows = [(name, uses[name], entries[name]) for name in sorted(uses)]
        parts.append(
            f'<div id="uses-by-{key}">{_table((key, "uses", "entries"), rows, numeric=2)}</div>'
        )
    body = (
        f'<div class="figures">{"".join(figures)}</div><div class="figures">{"".join(parts)}</div>'
    )
    return _section("Data uses", body, "uses")


def _short(value: object) -> object:
    """Long strings (digests) cut to 16 characters, inside lists too."""
    if isinstance(value, str) and len(value) > 24:
        return value[:16] + "…"
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def _policies_section(events: Sequence[LedgerEvent]) -> str:
    rows = []
    for item, current in policy_versions(events):
        assert isinstance(item.event, Record)
        body = dict(item.event.body)
        version = body.pop("version", "")
        details = json.dumps(
            {k: _short(v) for k, v in body.items()}, sort_keys=True, ensure_ascii=False
        )
        rows.append(
            (
                item.index,
                _when(item.event.at),
                item.event.node,
                str(version),
                _code(details[:300]),
                Markup('<span class="ok">yes</span>') if current else "superseded",
            )
        )
    if not rows:
        return _section(
            "Policy versions in force", '<p class="muted">none recorded</p>', "policies"
        )
    table = _table(("entry", "recorded", "by", "version", "policy", "in force"), rows)
    return _section("Policy versions in force", table, "policies")


def render_report(data: ReportData) -> str:
    """The report as one HTML document (pure)."""
    cp = data.checkpoint
    report = data.violations
    consents = _figure(
        _consent_plot(data.events),
        "consents granted and revoked over time",
        f"{report.consents_granted} consents granted, {report.consents_revoked} revoked "
        "(cumulative, by the time the node recorded each event).",
    )
    kinds = sorted(Counter(report.events_by_type).items())
    sections = [
        _checkpoint_section(cp),
        _trust_section(data),
        _violations_section(report),
        _section("Consents over time", consents, "consents"),
        _uses_section(data.events),
        _policies_section(data.events),
        _section("Ledger entries by type", _table(("type", "entries"), kinds, 1), "entries"),
    ]
    title = f"Accord consent-ledger audit — {cp.origin}, checkpoint {cp.size}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style>"
        f"<script>{SCRIPT}</script></head>"
        f'<body data-images="0" data-rendered="0"><header><h1>{_esc(title)}</h1>'
        f"<p>Generated {_esc(_when(data.generated_at))} from a checkpoint whose signature "
        "verified and whose entries were all re-hashed to its root. Nothing in this report "
        "rests on the coordinator's word.</p></header>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )


def check_writable(out: Path) -> None:
    """Fail early, with one line, if the report cannot be written to ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".probe-"):
            pass
    except OSError as exc:
        raise InvalidInput(
            f"cannot write the report to {out}: {exc.strerror or exc}; choose a writable folder"
        ) from exc


def write_report(out: Path, data: ReportData) -> Path:
    """Write ``report.html`` and the signed checkpoint beside it; return the report's path."""
    check_writable(out)
    page = render_report(data)
    target = out / REPORT_FILE
    try:
        (out / CHECKPOINT_FILE).write_text(data.note, encoding="utf-8")
        partial = out / f".{REPORT_FILE}.tmp"
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, target)
    except OSError as exc:
        raise InvalidInput(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    return target
