"""gRPC servicer for accord.v1.Alignment: run an alignment and stream its progress."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import grpc

from accord.coordinator.alignment import AlignmentOrchestrator
from accord.coordinator.blocking import RowBlocker
from accord.coordinator.metrics import CoordinatorMetrics
from accord.errors import NotPermitted
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.registry import reject_unknown_fields
from accord.rpc.tls import peer_party

# Who may start an alignment: the brand's operators (its label node's certificate) and the
# coordinator's own operators.
OPERATORS_EXTRA = ("coordinator",)


class AlignmentServicer(alignment_pb2_grpc.AlignmentServicer):
    def __init__(
        self,
        orchestrator: AlignmentOrchestrator,
        blocker: RowBlocker,
        metrics: CoordinatorMetrics | None = None,
    ) -> None:
        self._orchestrator = orchestrator
        self._blocker = blocker
        self._metrics = metrics
        self._running = threading.Lock()

    def Block(
        self, request: alignment_pb2.BlockRequest, context: grpc.ServicerContext
    ) -> alignment_pb2.BlockResponse:
        reject_unknown_fields(request, "request")
        rows, notified = self._blocker.block(peer_party(context), list(request.row_keys))
        return alignment_pb2.BlockResponse(rows=rows, nodes_notified=notified)

    def GetBlockedRows(
        self, request: alignment_pb2.BlockedRowsRequest, context: grpc.ServicerContext
    ) -> alignment_pb2.BlockedRowsResponse:
        blocked = self._blocker.blocked_for(peer_party(context))
        return alignment_pb2.BlockedRowsResponse(
            runs=[alignment_pb2.BlockedRows(run_id=r, row_keys=k) for r, k in blocked.items()]
        )

    def RunAlignment(
        self, request: alignment_pb2.RunAlignmentRequest, context: grpc.ServicerContext
    ) -> Iterator[alignment_pb2.AlignmentProgress]:
        reject_unknown_fields(request, "request")
        caller = peer_party(context)
        label = [n.channel for n in self._orchestrator.registry().nodes if n.role == "label"]
        if caller not in (*label, *OPERATORS_EXTRA):
            raise NotPermitted(f"{caller!r} may not start an alignment; the brand (label node) may")
        if not self._running.acquire(blocking=False):
            raise NotPermitted("an alignment run is already in progress; wait for it to finish")
        try:
            events: queue.Queue[alignment_pb2.AlignmentProgress | BaseException | None] = (
                queue.Queue()
            )

            def work() -> None:
                try:
                    result = self._orchestrator.run(
                        request.identifier or alignment_pb2.IDENTIFIER_KIND_PHONE,
                        list(request.channels) or None,
                        events.put,
                    )
                    if self._metrics is not None:
                        self._metrics.aligned(result)
                    events.put(
                        alignment_pb2.AlignmentProgress(
                            run_id=result.run_id,
                            stage="done",
                            label_candidates=result.label_candidates,
                            channels=[
                                alignment_pb2.ChannelAlignment(channel=c, candidates=a, matched=b)
                                for c, (a, b) in sorted(result.channels.items())
                            ],
                            rows=result.rows,
                            rows_with_two_or_more_channels=result.rows_two_plus,
                            ledger_index=result.ledger_index,
                        )
                    )
                except BaseException as exc:
                    if self._metrics is not None:
                        self._metrics.alignment_failed()
                    events.put(exc)
                finally:
                    events.put(None)

            threading.Thread(target=work, name="alignment-run", daemon=True).start()
            while (event := events.get()) is not None:
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            self._running.release()


def add_alignment(server: grpc.Server, servicer: AlignmentServicer) -> str:
    alignment_pb2_grpc.add_AlignmentServicer_to_server(servicer, server)
    name: str = alignment_pb2.DESCRIPTOR.services_by_name["Alignment"].full_name
    return name
