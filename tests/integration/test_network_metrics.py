"""Every party of a real network serves Prometheus metrics; scraped after an alignment, a short
training and scoring, they count that work."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from accord.launcher import LocalNetwork
from accord.pki_layout import COORDINATOR
from accord.proto.v1 import scoring_pb2_grpc
from accord.rpc.tls import PartyCredentials
from accord.touchpoint import ask, subject

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(endpoint: str) -> Samples:
    """GET /metrics over plain HTTP, as Prometheus would: {name: {labels: value}}."""
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=10) as reply:
        body = reply.read().decode()
    out: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[s.name][tuple(sorted(s.labels.items()))] = s.value
    return out


def calls(samples: Samples, method: str, code: str = "OK") -> float:
    return samples["accord_rpc_requests_total"].get((("code", code), ("method", method)), 0.0)


def calls_any_code(samples: Samples, method: str) -> float:
    return sum(
        v for k, v in samples["accord_rpc_requests_total"].items() if ("method", method) in k
    )


def one(samples: Samples, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


def brand_refs(network: LocalNetwork, count: int) -> list[str]:
    """Brand references of customers every node holds (so they can be scored)."""
    coord = create_engine(f"sqlite:///{network.workdir / 'coordinator' / 'coordinator.db'}")
    with coord.connect() as conn:
        run = conn.execute(
            text("SELECT alignment_run FROM model_version ORDER BY created_at DESC LIMIT 1")
        ).scalar()
        keys = [
            bytes(r[0])
            for r in conn.execute(
                text(
                    "SELECT row_key FROM aligned_row WHERE run_id = :r "
                    "GROUP BY row_key HAVING COUNT(*) = 4 LIMIT :n"
                ),
                {"r": run, "n": count},
            )
        ]
    label = create_engine(f"sqlite:///{network.node_dir('label') / 'node.db'}")
    with label.connect() as conn:
        return [
            str(
                conn.execute(
                    text("SELECT local_ref FROM alignment_row WHERE run_id = :r AND row_key = :k"),
                    {"r": run, "k": k},
                ).scalar()
            )
            for k in keys
        ]


def test_each_party_serves_metrics_that_count_alignment_training_and_scoring(trained) -> None:  # type: ignore[no-untyped-def]
    network, _, _ = trained
    marketer = PartyCredentials.load(network.pki_dir / "marketer")
    refs = brand_refs(network, 3)
    assert refs
    with marketer.channel(network.parties[COORDINATOR].endpoint, COORDINATOR) as channel:
        stub = scoring_pb2_grpc.ScoringStub(channel)
        answers = [ask(stub, "checkout", subject(ref), "marketing") for ref in refs]
    assert any(a.scored for a in answers)

    coordinator = scrape(network.parties[COORDINATOR].metrics_endpoint)
    # the alignment CLI hangs up once it has the run's last message: OK or CANCELLED, by a race
    assert calls_any_code(coordinator, "/accord.v1.Alignment/RunAlignment") >= 1
    assert calls(coordinator, "/accord.v1.Scoring/Begin") >= len(refs)
    assert calls(coordinator, "/accord.v1.Scoring/Score") >= 1
    assert calls(coordinator, "/accord.v1.Registry/Register") >= 4
    begin = (("method", "/accord.v1.Scoring/Begin"),)
    assert coordinator["accord_rpc_latency_seconds_count"][begin] >= len(refs)
    assert one(coordinator, "accord_alignment_runs_total", result="completed") >= 1
    assert sum(coordinator["accord_alignment_matched_total"].values()) > 0
    assert sum(coordinator["accord_scoring_answers_total"].values()) >= len(refs)
    assert one(coordinator, "accord_scoring_answers_total", outcome="scored") + one(
        coordinator, "accord_scoring_answers_total", outcome="degraded"
    ) >= sum(a.scored for a in answers)
    entries = one(coordinator, "accord_ledger_entries")
    assert entries > 0
    assert 0 < one(coordinator, "accord_ledger_checkpoint_entries") <= entries
    assert one(coordinator, "accord_checkpoint_age_seconds") >= 0
    assert one(coordinator, "accord_trainings_total", kind="trust") >= 1
    assert one(coordinator, "accord_training_rounds_total", kind="trust") >= 3

    for channel in ("pay", "shop", "social", "label"):
        node = scrape(network.parties[channel].metrics_endpoint)
        assert calls(node, "/accord.v1.NodeAlignment/Finish") >= 1, channel
        assert one(node, "accord_consents", state="granted") > 0, channel
        assert one(node, "accord_node_customers") > 0, channel
        if channel != "label":  # the feature nodes compute in training and scoring
            assert calls(node, "/accord.v1.NodeScoring/Embed") >= 1, channel
            assert one(node, "accord_training_rounds_answered_total") >= 3, channel
