"""Customer-held consent credentials: the signed layout, issuance and verifying a presentation.

A channel issues a blind BBS signature (:mod:`accord.crypto.bbs.blind`) over fixed messages

    0 ``channel:<id>``           the issuing channel
    1 ``expires:<unix time>``    always a UTC midnight (see :func:`credential_expiry`)
    2 ``notice:<version>``       the privacy notice shown
    3 ``jurisdiction:<code>``
    4.. ``purpose:<id>:yes|no``  one message per purpose of the vocabulary, in its order

plus one message the channel never sees: the holder's secret, inside the holder's commitment.
Every credential has the same number of messages, so a proof's length says nothing about how
many purposes the customer agreed to. At a use, the holder discloses the channel, the expiry
and the one purpose the use needs, bound to the request by the presentation header (nonce and
audience); two proofs of one credential share no bytes a verifier could match.

Expiry is disclosed, so it is coarse on purpose: credentials are short-lived and expire at a
UTC midnight, a value every customer issued or renewed that day shares. Renewal re-issues
from the node's consent record, so a revoked consent stops being renewable, and the node's own
gate refuses a revoked customer at once regardless of any credential still unexpired.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from accord.consent.events import SealedDataUse, UseProof
from accord.consent.vocabulary import PURPOSES
from accord.crypto.bbs import blind
from accord.crypto.bbs.suite import PROOF_MIN_LENGTH, SCALAR_LENGTH
from accord.crypto.errors import BbsVerificationError
from accord.errors import InvalidInput

HEADER = b"accord consent credential v1"
PRESENTATION_TAG = b"accord consent presentation v1"
CHANNEL, EXPIRES, NOTICE, JURISDICTION = range(4)
FIRST_PURPOSE = 4
MESSAGE_COUNT = FIRST_PURPOSE + len(PURPOSES)
DAY = 86400
# The signed scalars: the messages, the prover's blind and the holder secret; three disclosed.
PROOF_LENGTH = PROOF_MIN_LENGTH + SCALAR_LENGTH * (MESSAGE_COUNT + 2 - 3)
# How long an issued or renewed credential lives, at most (whole UTC days after today's end).
DEFAULT_TTL_DAYS = 1


@dataclass(frozen=True)
class CredentialFields:
    """What a channel signs for one customer's consent."""

    channel: str
    expires_at: int
    notice_version: str
    jurisdiction: str
    purposes: tuple[str, ...]

    def messages(self) -> list[bytes]:
        if self.expires_at % DAY:
            raise InvalidInput("a credential expires at a UTC midnight")
        unknown = set(self.purposes) - set(PURPOSES)
        if unknown:
            raise InvalidInput(f"purposes outside the vocabulary: {', '.join(sorted(unknown))}")
        head = [
            f"channel:{self.channel}",
            f"expires:{self.expires_at}",
            f"notice:{self.notice_version}",
            f"jurisdiction:{self.jurisdiction}",
        ]
        tail = [f"purpose:{p}:{'yes' if p in self.purposes else 'no'}" for p in PURPOSES]
        return [m.encode() for m in (*head, *tail)]

    @classmethod
    def from_messages(cls, messages: Sequence[bytes]) -> CredentialFields:
        if len(messages) != MESSAGE_COUNT:
            raise InvalidInput(f"a consent credential signs {MESSAGE_COUNT} messages")
        try:
            text = [m.decode() for m in messages]
            expires_at = int(_value(text[EXPIRES], "expires"))
        except ValueError as exc:  # UnicodeDecodeError, or an expiry that is not a number
            raise InvalidInput("the credential's messages are not in the signed layout") from exc
        purposes = tuple(
            p for p, m in zip(PURPOSES, text[FIRST_PURPOSE:], strict=True) if m.endswith(":yes")
        )
        fields = cls(
            _value(text[CHANNEL], "channel"),
            expires_at,
            _value(text[NOTICE], "notice"),
            _value(text[JURISDICTION], "jurisdiction"),
            purposes,
        )
        if fields.messages() != list(messages):
            raise InvalidInput("the credential's messages are not in the signed layout")
        return fields


def _value(message: str, key: str) -> str:
    prefix = f"{key}:"
    if not message.startswith(prefix):
        raise InvalidInput(f"expected the {key} message, got {message[:40]!r}")
    return message[len(prefix) :]


def purpose_index(purpose: str) -> int:
    if purpose not in PURPOSES:
        raise InvalidInput(f"{purpose!r} is not a purpose of the vocabulary")
    return FIRST_PURPOSE + PURPOSES.index(purpose)


def credential_expiry(now: int, consent_expires_at: int, ttl_days: int = DEFAULT_TTL_DAYS) -> int:
    """The UTC midnight a credential issued at ``now`` expires at: ``ttl_days`` after today's
    end, but never after the consent itself (then the last midnight before it)."""
    wanted = (now // DAY + ttl_days) * DAY
    capped = min(wanted, consent_expires_at // DAY * DAY)
    if capped <= now:
        raise InvalidInput("the consent ends before the next UTC midnight: nothing to issue")
    return capped


def presentation_header(nonce: bytes, audience: str) -> bytes:
    """Binds a proof to one request: its nonce and the party it is shown to."""
    aud = audience.encode()
    return PRESENTATION_TAG + struct.pack(">H", len(aud)) + aud + nonce


def issue(
    sk: bytes, pk: bytes, commitment_with_proof: bytes, fields: CredentialFields
) -> tuple[bytes, list[bytes]]:
    """The channel's side: (signature, messages) over ``fields`` and the holder's commitment.

    Raises :class:`BbsVerificationError` when the commitment's proof does not verify.
    """
    if blind.committed_count(commitment_with_proof) != 1:
        raise BbsVerificationError("a consent credential commits to exactly the holder secret")
    messages = fields.messages()
    return blind.blind_sign(sk, pk, commitment_with_proof, HEADER, messages), messages


@dataclass(frozen=True)
class Presentation:
    """What a holder shows at one use: the proof and the messages it discloses."""

    channel: str
    purpose: str
    expires_at: int
    proof: bytes

    def to_json(self) -> dict[str, object]:
        return {
            "channel": self.channel,
            "purpose": self.purpose,
            "expiresAt": self.expires_at,
            "proof": self.proof.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Presentation:
        try:
            return cls(
                str(data["channel"]),
                str(data["purpose"]),
                int(str(data["expiresAt"])),
                bytes.fromhex(str(data["proof"])),
            )
        except (KeyError, ValueError) as exc:
            raise InvalidInput(f"not a consent presentation: {exc}") from exc

    def disclosed(self) -> tuple[list[bytes], list[int]]:
        messages = [f"channel:{self.channel}".encode(), f"expires:{self.expires_at}".encode()]
        index = purpose_index(self.purpose)
        return [*messages, f"purpose:{self.purpose}:yes".encode()], [CHANNEL, EXPIRES, index]


class PresentationRefused(InvalidInput):
    """A presentation that does not authorise this use; ``reason`` says which check failed:
    one of :data:`accord.consent.events.REFUSAL_REASONS` (``missing`` and ``replayed`` are the
    node's, which knows whether a proof was required and which proofs it accepted before)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def verify_presentation(
    pk: bytes,
    presentation: Presentation,
    *,
    channel: str,
    purpose: str,
    nonce: bytes,
    audience: str,
    now: int,
) -> None:
    """Raise :class:`PresentationRefused` unless ``presentation`` proves, under the channel's
    public key ``pk``, a credential of ``channel`` for ``purpose``, unexpired at ``now`` and
    made for this request. Reasons: ``channel``, ``purpose``, ``expired``, ``proof``."""
    if presentation.channel != channel:
        raise PresentationRefused("channel", f"the proof is for channel {presentation.channel!r}")
    if presentation.purpose != purpose:
        raise PresentationRefused("purpose", f"the proof is for purpose {presentation.purpose!r}")
    if presentation.expires_at <= now:
        raise PresentationRefused("expired", "the credential has expired")
    messages, indexes = presentation.disclosed()
    if len(presentation.proof) != PROOF_LENGTH:
        # every credential has one shape; a proof of any other signature is not ours
        raise PresentationRefused("proof", "the consent proof has the wrong length")
    try:
        blind.blind_proof_verify(
            pk,
            presentation.proof,
            HEADER,
            presentation_header(nonce, audience),
            MESSAGE_COUNT,
            messages,
            [],
            indexes,
            [],
        )
    except BbsVerificationError as exc:
        # another key, another request (replay), or a forgery: one reason outward
        raise PresentationRefused("proof", "the consent proof does not verify") from exc


def use_proof(presentation: Presentation, nonce: bytes) -> UseProof:
    """What goes onto the ledger with the use: the proof, its expiry and the request nonce."""
    return UseProof(presentation.expires_at, nonce.decode(), presentation.proof)


def verify_use_proof(pk: bytes, event: SealedDataUse) -> None:
    """The auditor's check of a ledger entry's proof, from the channel's public key alone: it
    authorised this node's use for this purpose, unexpired when the use was logged, and was
    made for the request nonce it names with the node as audience. Raises
    :class:`PresentationRefused` (``InvalidInput`` if the entry carries no proof)."""
    if event.proof is None:
        raise InvalidInput("this use carries no consent proof")
    proof = event.proof
    verify_presentation(
        pk,
        Presentation(event.node, event.purpose, proof.expires, proof.proof),
        channel=event.node,
        purpose=event.purpose,
        nonce=proof.nonce.encode(),
        audience=event.node,
        now=event.at,
    )


__all__ = [
    "HEADER",
    "MESSAGE_COUNT",
    "CredentialFields",
    "Presentation",
    "PresentationRefused",
    "credential_expiry",
    "issue",
    "presentation_header",
    "purpose_index",
    "use_proof",
    "verify_presentation",
    "verify_use_proof",
]
