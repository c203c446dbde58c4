"""gRPC servicer for accord.v1.Scoring (marketers' touchpoints): decode, call, encode."""

from __future__ import annotations

import grpc

from accord.coordinator.metrics import REFUSED, CoordinatorMetrics, outcome_of
from accord.coordinator.scoring import ScoringService
from accord.errors import InvalidInput
from accord.proto.v1 import scoring_pb2, scoring_pb2_grpc
from accord.registry import reject_unknown_fields

MAX_PRESENTATIONS = 16


class ScoringServicer(scoring_pb2_grpc.ScoringServicer):
    def __init__(self, service: ScoringService, metrics: CoordinatorMetrics | None = None) -> None:
        self._service = service
        self._metrics = metrics

    def Begin(
        self, request: scoring_pb2.BeginRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.BeginResponse:
        reject_unknown_fields(request, "request")
        pending, credential, refusal = self._service.begin(
            request.touchpoint, request.subject, request.purpose, request.holder_jwk
        )
        if pending is None:
            if self._metrics is not None:
                self._metrics.answered(REFUSED)
            return scoring_pb2.BeginResponse(refusal=refusal)
        return scoring_pb2.BeginResponse(
            request_id=pending.request_id, credential=credential, nodes=list(pending.nodes)
        )

    def Score(
        self, request: scoring_pb2.ScoreRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.ScoreResponse:
        reject_unknown_fields(request, "request")
        if len(request.presentations) > MAX_PRESENTATIONS:
            raise InvalidInput(f"at most {MAX_PRESENTATIONS} presentations")
        presentations = {p.node: p.sd_jwt for p in request.presentations}
        if len(presentations) != len(request.presentations):
            raise InvalidInput("one presentation per node")
        proofs = {
            p.node: p.consent_proof for p in request.presentations if p.HasField("consent_proof")
        }
        answer = self._service.score(request.request_id, presentations, proofs)
        if self._metrics is not None:
            self._metrics.answered(outcome_of(answer))
        return scoring_pb2.ScoreResponse(
            request_id=answer.request_id,
            scored=answer.scored,
            **({"trust": answer.trust} if answer.trust is not None else {}),
            action=answer.action,
            policy_version=answer.policy_version,
            sources=answer.sources,
            confidence=answer.confidence,
            explanation=answer.explanation,
            receipt=scoring_pb2.Receipt(
                use_indexes=answer.use_indexes, checkpoint=answer.checkpoint
            ),
            model=answer.model,
            **_ltv_fields(answer.ltv),
        )

    def Probe(
        self, request: scoring_pb2.ProbeRequest, context: grpc.ServicerContext
    ) -> scoring_pb2.ProbeResponse:
        return scoring_pb2.ProbeResponse(nodes=self._service.probe())


def add_scoring(
    server: grpc.Server, service: ScoringService, metrics: CoordinatorMetrics | None = None
) -> str:
    scoring_pb2_grpc.add_ScoringServicer_to_server(ScoringServicer(service, metrics), server)
    name: str = scoring_pb2.DESCRIPTOR.services_by_name["Scoring"].full_name
    return name


def _ltv_fields(ltv: tuple[float, float | None, float | None] | None) -> dict[str, float]:
    """The answer's LTV fields: the interval only when the answer has one."""
    if ltv is None:
        return {}
    named = {"ltv": ltv[0], "ltv_low": ltv[1], "ltv_high": ltv[2]}
    return {k: v for k, v in named.items() if v is not None}
