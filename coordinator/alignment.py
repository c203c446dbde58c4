"""The coordinator's side of alignment: orchestrate, join row keys, keep labels, record the run.

The coordinator never touches identifiers or blinded values: it signs a ticket, asks the label
node to prepare, asks each channel node to run PSI with the label node directly, collects each
side's row keys in match order, joins them into rows keyed by the label node's key, fetches the
labels, stores the run in one transaction and only then tells every node to keep it. Any
failure aborts the run at every node, so no partial alignment remains anywhere.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import structlog
from sqlalchemy import Engine, insert

from accord.clock import Clock, system_clock
from accord.consent.events import Record, encode
from accord.coordinator.ledger.log import Ledger
from accord.coordinator.models import AlignedRow, AlignmentRun, RunLabel
from accord.crypto.keys import NoteSigner
from accord.errors import AccordError, InvalidInput, NotReady, Unavailable
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.protocol import TICKET_DOMAIN
from accord.registry import NodeDescriptor, RegistryView
from accord.rowkeys import ROW_KEY_BYTES
from accord.rpc.client import describe_rpc_error
from accord.rpc.roles import COORDINATOR
from accord.rpc.tls import PartyCredentials

log = structlog.get_logger(__name__)

TICKET_LIFETIME_S = 3600
PURPOSE = "model-training"
IDENTIFIER_NAMES: dict[int, str] = {
    alignment_pb2.IDENTIFIER_KIND_PHONE: "phone",
    alignment_pb2.IDENTIFIER_KIND_EMAIL: "email",
}

Progress = Callable[[alignment_pb2.AlignmentProgress], None]


@dataclass
class RunResult:
    run_id: str
    label_candidates: int
    channels: dict[str, tuple[int, int]]  # channel -> (candidates, matched)
    rows: int
    rows_two_plus: int
    ledger_index: int
    joined: dict[bytes, dict[str, bytes]] = field(repr=False, default_factory=dict)


def _keys(blob: bytes) -> list[bytes]:
    if len(blob) % ROW_KEY_BYTES:
        raise Unavailable("a node reported row keys of the wrong length")
    return [blob[i : i + ROW_KEY_BYTES] for i in range(0, len(blob), ROW_KEY_BYTES)]


class AlignmentOrchestrator:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        signer: NoteSigner,
        credentials: PartyCredentials,
        registry: Callable[[], RegistryView],
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.signer = signer
        self.credentials = credentials
        self.registry = registry
        self._clock = clock

    def _stub(
        self, endpoint: str, node: str
    ) -> tuple[grpc.Channel, alignment_pb2_grpc.NodeAlignmentStub]:
        channel = self.credentials.channel(endpoint, node)
        return channel, alignment_pb2_grpc.NodeAlignmentStub(channel)

    def run(
        self,
        identifier: int = alignment_pb2.IDENTIFIER_KIND_PHONE,
        channels: list[str] | None = None,
        progress: Progress = lambda p: None,
    ) -> RunResult:
        if identifier not in IDENTIFIER_NAMES:
            raise InvalidInput("identifier must be IDENTIFIER_KIND_PHONE or IDENTIFIER_KIND_EMAIL")
        view = self.registry()
        labels = [n for n in view.nodes if n.role == "label"]
        if not labels:
            raise NotReady("no label node is registered: the brand's node must join first")
        label = labels[0]
        features = {n.channel: n for n in view.nodes if n.role == "feature"}
        wanted = channels or sorted(features)
        unknown = [c for c in wanted if c not in features]
        if unknown or not wanted:
            raise InvalidInput(
                f"not registered feature nodes: {', '.join(unknown) or '(none given)'}"
            )
        run_id = uuid.uuid4().hex
        now = int(self._clock())
        ticket = alignment_pb2.AlignmentTicket(
            run_id=run_id,
            label_node=label.channel,
            channels=wanted,
            identifier=identifier,  # type: ignore[arg-type]
            purpose=PURPOSE,
            expires_at=now + TICKET_LIFETIME_S,
        )
        body = ticket.SerializeToString(deterministic=True)
        signed = alignment_pb2.SignedTicket(
            ticket=body, signature=self.signer.sign(TICKET_DOMAIN + body)
        )
        total = 3 + len(wanted)
        step = 0
        started = time.perf_counter()

        def report(stage: str, channel: str = "") -> None:
            nonlocal step
            step += 1
            elapsed = round(time.perf_counter() - started, 3)
            log.info(
                "alignment progress", run=run_id, stage=stage, channel=channel, seconds=elapsed
            )
            progress(
                alignment_pb2.AlignmentProgress(
                    run_id=run_id, stage=stage, channel=channel, steps_done=step, steps_total=total
                )
            )

        channels_open: list[grpc.Channel] = []
        participants = [label, *(features[c] for c in wanted)]
        try:
            lch, label_stub = self._stub(label.endpoint, label.channel)
            channels_open.append(lch)
            # The label node prepares while the channels pass their own consent gates; a
            # channel's PSI stream waits at the label node until its side is ready.
            preparing = ThreadPoolExecutor(max_workers=1)
            prepare_call = preparing.submit(
                label_stub.Prepare, alignment_pb2.PrepareRequest(ticket=signed), timeout=600
            )
            preparing.shutdown(wait=False)

            def pair(
                channel: str,
            ) -> tuple[str, alignment_pb2.PairReport, alignment_pb2.PairReport]:
                ch, stub = self._stub(features[channel].endpoint, channel)
                channels_open.append(ch)
                theirs = stub.AlignWith(
                    alignment_pb2.AlignWithRequest(ticket=signed, label_endpoint=label.endpoint),
                    timeout=900,
                )
                ours = label_stub.Report(
                    alignment_pb2.ReportRequest(run_id=run_id, channel=channel), timeout=60
                )
                return channel, theirs, ours

            joined: dict[bytes, dict[str, bytes]] = {}
            summary: dict[str, tuple[int, int]] = {}
            with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
                pairs = pool.map(pair, wanted)
                prepared = prepare_call.result()
                report("prepare", label.channel)
                consents: dict[str, dict[str, object]] = {
                    label.channel: {"candidates": prepared.candidates},
                }
                for channel, theirs, ours in pairs:
                    channel_keys, label_keys = _keys(theirs.row_keys), _keys(ours.row_keys)
                    if len(channel_keys) != len(label_keys):
                        raise Unavailable(f"{channel!r} and the label node disagree on the matches")
                    for lk, ck in zip(label_keys, channel_keys, strict=True):
                        joined.setdefault(lk, {})[channel] = ck
                    summary[channel] = (theirs.candidates, len(channel_keys))
                    consents[channel] = {
                        "candidates": theirs.candidates,
                        "consentsUsed": theirs.consents_used,
                        "consentsDigest": theirs.consents_digest.hex(),
                    }
                    consents[label.channel].update(
                        consentsUsed=ours.consents_used, consentsDigest=ours.consents_digest.hex()
                    )
                    report("psi", channel)
            labels_by_key: dict[bytes, float] = {}
            for chunk in label_stub.Labels(alignment_pb2.LabelsRequest(run_id=run_id), timeout=600):
                keys = _keys(chunk.row_keys)
                if len(keys) != len(chunk.labels):
                    raise Unavailable("the label node sent labels and keys of different counts")
                labels_by_key.update(zip(keys, chunk.labels, strict=True))
            missing = [k for k in joined if k not in labels_by_key]
            if missing:
                raise Unavailable(f"the label node sent no label for {len(missing)} aligned rows")
            report("labels", label.channel)
            two_plus = sum(1 for nodes in joined.values() if len(nodes) >= 2)
            record = Record(
                COORDINATOR,
                "alignment.run",
                now,
                {
                    "run": run_id,
                    "identifier": IDENTIFIER_NAMES[identifier],
                    "purpose": PURPOSE,
                    "labelNode": label.channel,
                    "nodes": consents,
                    "rows": len(joined),
                    "rowsWithTwoOrMoreChannels": two_plus,
                },
            )
            (appended,) = self.ledger.append([encode(record)], appended_by=COORDINATOR)
            self._store(
                run_id,
                now,
                label.channel,
                IDENTIFIER_NAMES[identifier],
                joined,
                labels_by_key,
                summary,
                prepared.candidates,
                appended.index,
            )

            def finish(node: NodeDescriptor) -> None:
                ch, stub = self._stub(node.endpoint, node.channel)
                channels_open.append(ch)
                stub.Finish(alignment_pb2.FinishRequest(run_id=run_id, commit=True), timeout=120)

            with ThreadPoolExecutor(max_workers=len(participants)) as pool:
                list(pool.map(finish, participants))
            report("commit")
        except (grpc.RpcError, AccordError) as exc:
            self._abort(run_id, participants)
            if isinstance(exc, grpc.RpcError):
                raise Unavailable(describe_rpc_error(exc, "a node in the alignment run")) from exc
            raise
        finally:
            for ch in channels_open:
                ch.close()
        return RunResult(
            run_id, prepared.candidates, summary, len(joined), two_plus, appended.index, joined
        )

    def _abort(self, run_id: str, participants: list[NodeDescriptor]) -> None:
        for node in participants:
            try:
                ch, stub = self._stub(node.endpoint, node.channel)
                with ch:
                    stub.Finish(
                        alignment_pb2.FinishRequest(run_id=run_id, commit=False), timeout=10
                    )
            except grpc.RpcError as err:
                log.warning(
                    "abort not delivered",
                    node=node.channel,
                    reason=describe_rpc_error(err, node.channel),
                )

    def _store(
        self,
        run_id: str,
        now: int,
        label_node: str,
        identifier: str,
        joined: dict[bytes, dict[str, bytes]],
        labels: dict[bytes, float],
        summary: dict[str, tuple[int, int]],
        label_candidates: int,
        ledger_index: int,
    ) -> None:
        rows = []
        for row_key, nodes in joined.items():
            rows.append(
                {"run_id": run_id, "row_key": row_key, "node": label_node, "node_row_key": row_key}
            )
            rows.extend(
                {"run_id": run_id, "row_key": row_key, "node": n, "node_row_key": k}
                for n, k in nodes.items()
            )
        with self.engine.begin() as conn:
            conn.execute(
                insert(AlignmentRun),
                [
                    {
                        "run_id": run_id,
                        "created_at": now,
                        "label_node": label_node,
                        "identifier": identifier,
                        "summary": json.dumps(
                            {
                                "labelCandidates": label_candidates,
                                "channels": {
                                    c: {"candidates": a, "matched": b}
                                    for c, (a, b) in summary.items()
                                },
                            }
                        ),
                        "ledger_index": ledger_index,
                    }
                ],
            )
            if rows:
                conn.execute(insert(AlignedRow), rows)
                conn.execute(
                    insert(RunLabel),
                    [{"run_id": run_id, "row_key": k, "label": labels[k]} for k in joined],
                )
