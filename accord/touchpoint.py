"""A marketer's touchpoint: ask the coordinator about a customer, holding the credential key.

``Begin`` returns a credential bound to a key the touchpoint makes for this one request;
the touchpoint proves possession by signing one key-binding JWT per node, then ``Score``.
"""

from __future__ import annotations

import grpc

from accord.credentials import holder_public_json, new_holder_key, present
from accord.errors import AccordError
from accord.proto.v1 import scoring_pb2, scoring_pb2_grpc
from accord.rpc.client import describe_rpc_error


def subject(brand_ref: str | None = None, token: str | None = None) -> scoring_pb2.Subject:
    if brand_ref:
        return scoring_pb2.Subject(brand_ref=brand_ref)
    return scoring_pb2.Subject(touchpoint_token=token or "")


def ask(
    stub: scoring_pb2_grpc.ScoringStub,
    touchpoint: str,
    who: scoring_pb2.Subject,
    purpose: str,
    *,
    timeout_s: float = 10.0,
    retries: int = 1,
) -> scoring_pb2.ScoreResponse:
    """Begin, present to each node, Score; begin again once if a source failed mid-request."""
    for attempt in range(retries + 1):
        key = new_holder_key()
        try:
            begun = stub.Begin(
                scoring_pb2.BeginRequest(
                    touchpoint=touchpoint,
                    subject=who,
                    purpose=purpose,
                    holder_jwk=holder_public_json(key),
                ),
                timeout=timeout_s,
            )
            if begun.refusal:
                return scoring_pb2.ScoreResponse(scored=False, explanation=begun.refusal)
            presentations = [
                scoring_pb2.Presentation(node=n, sd_jwt=present(begun.credential, n, key))
                for n in begun.nodes
            ]
            answer: scoring_pb2.ScoreResponse = stub.Score(
                scoring_pb2.ScoreRequest(request_id=begun.request_id, presentations=presentations),
                timeout=timeout_s,
            )
        except grpc.RpcError as err:
            raise AccordError(describe_rpc_error(err, "the coordinator")) from err
        if answer.scored or "call Begin again" not in answer.explanation or attempt == retries:
            return answer
    raise AssertionError("unreachable")
