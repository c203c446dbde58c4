"""gRPC servicer for accord.v1.NodeScoring: decode, call :class:`ScoringParticipant`, encode."""

from __future__ import annotations

import grpc

from accord.consent.wire import consent_presentation
from accord.errors import InvalidInput, NotPermitted
from accord.node.scoring import ScoringParticipant
from accord.proto.v1 import scoring_pb2, scoring_pb2_grpc
from accord.registry import reject_unknown_fields
from accord.rpc.tls import peer_party


class NodeScoringServicer(scoring_pb2_grpc.NodeScoringServicer):
    def __init__(self, participant: ScoringParticipant, coordinator_party: str) -> None:
        self._participant = participant
        self._coordinator = coordinator_party

    def Embed(
        self, request: scoring_pb2.EmbedRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.EmbedResponse:
        caller = peer_party(context)
        if caller != self._coordinator:
            raise NotPermitted(f"only the coordinator relays scoring requests; {caller!r} may not")
        reject_unknown_fields(request, "request")
        consent = (
            consent_presentation(request.consent_proof)
            if request.HasField("consent_proof")
            else None
        )
        if request.phase == scoring_pb2.EMBED_PHASE_CHECK:
            permitted = self._participant.check(
                request.request_id, request.sd_jwt, request.purpose, consent
            )
            return scoring_pb2.EmbedResponse(permitted=permitted)
        if request.phase == scoring_pb2.EMBED_PHASE_COMPUTE:
            done = self._participant.compute(
                request.request_id,
                request.sd_jwt,
                request.purpose,
                list(request.participants),
                consent,
            )
            return scoring_pb2.EmbedResponse(
                permitted=True, masked=done.masked, dim=done.dim, use_index=done.use_index
            )
        if request.phase == scoring_pb2.EMBED_PHASE_OWN_ESTIMATE:
            own = self._participant.own_estimate(
                request.request_id, request.sd_jwt, request.purpose, consent
            )
            return scoring_pb2.EmbedResponse(
                permitted=True, own_estimate=own.value, use_index=own.use_index
            )
        raise InvalidInput(
            "phase must be EMBED_PHASE_CHECK, EMBED_PHASE_COMPUTE or EMBED_PHASE_OWN_ESTIMATE"
        )


def add_node_scoring(server: grpc.Server, servicer: NodeScoringServicer) -> str:
    scoring_pb2_grpc.add_NodeScoringServicer_to_server(servicer, server)
    name: str = scoring_pb2.DESCRIPTOR.services_by_name["NodeScoring"].full_name
    return name
