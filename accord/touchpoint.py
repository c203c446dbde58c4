"""A marketer's touchpoint: ask the coordinator about a customer, holding the credential key.

``Begin`` returns a credential bound to a key the touchpoint makes for this one request;
the touchpoint proves possession by signing one key-binding JWT per node, then ``Score``.
When the customer's side holds consent credentials (:mod:`accord.wallet`), ``prover`` makes
their proof for each node, bound to that node's nonce of this request and the node as audience.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from accord.consent.credential import Presentation as ConsentPresentation
from accord.consent.wire import consent_proof_message
from accord.credentials import holder_public_json, new_holder_key, node_nonce, present
from accord.errors import AccordError
from accord.proto.v1 import scoring_pb2, scoring_pb2_grpc
from accord.rpc.client import describe_rpc_error

# (node, the node's nonce of the request, purpose) -> the customer's proof for that node
Prover = Callable[[str, str, str], ConsentPresentation | None]


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
    prover: Prover | None = None,
) -> scoring_pb2.ScoreResponse:
    """Begin, present to each node, Score; begin again once if a source failed mid-request.

    ``prover(node, nonce, purpose)``: the customer's consent proof for ``node`` (None: none)."""
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
            presentations = []
            for n in begun.nodes:
                shown = prover(n, node_nonce(begun.credential, n), purpose) if prover else None
                presentations.append(
                    scoring_pb2.Presentation(
                        node=n,
                        sd_jwt=present(begun.credential, n, key),
                        consent_proof=consent_proof_message(shown) if shown else None,
                    )
                )
            answer: scoring_pb2.ScoreResponse = stub.Score(
                scoring_pb2.ScoreRequest(request_id=begun.request_id, presentations=presentations),
                timeout=timeout_s,
            )
        except grpc.RpcError as err:
            raise AccordError(describe_rpc_error(err, "the coordinator")) from err
        if answer.scored or "call Begin again" not in answer.explanation or attempt == retries:
            return answer
    raise AssertionError("unreachable")
