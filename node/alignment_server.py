"""gRPC servicer for accord.v1.NodeAlignment: decode, call :class:`NodeAlignment`, encode."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc

from accord.errors import NotPermitted
from accord.node.alignment import NodeAlignment
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.registry import reject_unknown_fields
from accord.rpc.tls import peer_party


class NodeAlignmentServicer(alignment_pb2_grpc.NodeAlignmentServicer):
    def __init__(
        self, alignment: NodeAlignment, coordinator_party: str, registered: Callable[[str], bool]
    ) -> None:
        self._alignment = alignment
        self._coordinator = coordinator_party
        self._registered = registered  # is this party in the registry this node verified?

    def _from_coordinator(self, context: grpc.ServicerContext) -> None:
        caller = peer_party(context)
        if caller != self._coordinator:
            raise NotPermitted(f"only the coordinator orchestrates alignment; {caller!r} may not")

    def BlockRows(
        self, request: alignment_pb2.BlockRowsRequest, context: grpc.ServicerContext
    ) -> alignment_pb2.BlockRowsResponse:
        self._from_coordinator(context)
        reject_unknown_fields(request, "request")
        runs = {r.run_id: list(r.row_keys) for r in request.runs}
        return alignment_pb2.BlockRowsResponse(customers=self._alignment.block_rows(runs))

    def Prepare(
        self, request: alignment_pb2.PrepareRequest, context: grpc.ServicerContext
    ) -> alignment_pb2.PrepareResponse:
        self._from_coordinator(context)
        reject_unknown_fields(request, "request")
        return alignment_pb2.PrepareResponse(candidates=self._alignment.prepare(request.ticket))

    def AlignWith(
        self, request: alignment_pb2.AlignWithRequest, context: grpc.ServicerContext
    ) -> alignment_pb2.PairReport:
        self._from_coordinator(context)
        reject_unknown_fields(request, "request")
        return self._alignment.align_with(request.ticket, request.label_endpoint)

    def Psi(
        self, request_iterator: Iterator[alignment_pb2.PsiMessage], context: grpc.ServicerContext
    ) -> Iterator[alignment_pb2.PsiMessage]:
        caller = peer_party(context)
        if not self._registered(caller):
            raise NotPermitted(f"{caller!r} is not a registered node of this network")
        yield from self._alignment.psi(request_iterator, caller)

    def Report(
        self, request: alignment_pb2.ReportRequest, context: grpc.ServicerContext
    ) -> alignment_pb2.PairReport:
        self._from_coordinator(context)
        reject_unknown_fields(request, "request")
        return self._alignment.report(request.run_id, request.channel)

    def Labels(
        self, request: alignment_pb2.LabelsRequest, context: grpc.ServicerContext
    ) -> Iterator[alignment_pb2.LabelChunk]:
        self._from_coordinator(context)
        reject_unknown_fields(request, "request")
        yield from self._alignment.labels(request.run_id)

    def Finish(
        self, request: alignment_pb2.FinishRequest, context: grpc.ServicerContext
    ) -> alignment_pb2.FinishResponse:
        self._from_coordinator(context)
        reject_unknown_fields(request, "request")
        return alignment_pb2.FinishResponse(
            rows_kept=self._alignment.finish(request.run_id, request.commit)
        )


def add_node_alignment(server: grpc.Server, servicer: NodeAlignmentServicer) -> str:
    alignment_pb2_grpc.add_NodeAlignmentServicer_to_server(servicer, server)
    name: str = alignment_pb2.DESCRIPTOR.services_by_name["NodeAlignment"].full_name
    return name
