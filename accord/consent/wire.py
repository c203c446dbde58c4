"""A consent proof on the wire (``accord.v1.ConsentProof``) and as :class:`Presentation`."""

from __future__ import annotations

from accord.consent.credential import Presentation
from accord.errors import InvalidInput
from accord.proto.v1 import scoring_pb2

MAX_PROOF_BYTES = 2048


def consent_presentation(proof: scoring_pb2.ConsentProof) -> Presentation:
    """The wire's consent proof as the credential module reads it (sizes checked here)."""
    if len(proof.proof) > MAX_PROOF_BYTES or len(proof.channel) > 64 or len(proof.purpose) > 64:
        raise InvalidInput("consent_proof is oversized")
    return Presentation(proof.channel, proof.purpose, int(proof.expires_at), bytes(proof.proof))


def consent_proof_message(shown: Presentation) -> scoring_pb2.ConsentProof:
    return scoring_pb2.ConsentProof(
        channel=shown.channel, purpose=shown.purpose, expires_at=shown.expires_at, proof=shown.proof
    )
