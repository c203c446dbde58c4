"""gRPC servicer for accord.v1.Witness: decode, call :class:`Witness`, encode.

Any party of the network may ask (c2sp.org/tlog-witness authenticates nothing beyond the log's
signature on the checkpoint): auditors and nodes bring the coordinator's newest checkpoint with
a consistency proof, and get the cosignature back.
"""

from __future__ import annotations

import grpc

from accord.errors import InvalidInput
from accord.node.witness import Witness
from accord.proto.v1 import audit_pb2, audit_pb2_grpc
from accord.registry import reject_unknown_fields

MAX_REQUEST_BYTES = 64 * 1024
"""A checkpoint with its signatures and a 63-hash proof is a few kilobytes."""


class WitnessServicer(audit_pb2_grpc.WitnessServicer):
    def __init__(self, witness: Witness) -> None:
        self._witness = witness

    def GetLatest(
        self, request: audit_pb2.GetLatestRequest, context: grpc.ServicerContext
    ) -> audit_pb2.GetLatestResponse:
        reject_unknown_fields(request, "request")
        if len(request.origin) > 255:
            raise InvalidInput("origin is at most 255 characters")
        latest = self._witness.latest(request.origin)
        return audit_pb2.GetLatestResponse(size=latest.size, note=latest.note)

    def AddCheckpoint(
        self, request: audit_pb2.AddCheckpointRequest, context: grpc.ServicerContext
    ) -> audit_pb2.AddCheckpointResponse:
        if request.ByteSize() > MAX_REQUEST_BYTES:
            raise InvalidInput(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
        reject_unknown_fields(request, "request")
        line = self._witness.add_checkpoint(
            request.old_size, request.checkpoint, [bytes(h) for h in request.consistency_proof]
        )
        return audit_pb2.AddCheckpointResponse(cosignature=line.line())


def add_witness(server: grpc.Server, witness: Witness) -> str:
    audit_pb2_grpc.add_WitnessServicer_to_server(WitnessServicer(witness), server)
    name: str = audit_pb2.DESCRIPTOR.services_by_name["Witness"].full_name
    return name
