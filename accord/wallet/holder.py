"""What a holder does: request a credential, accept it after checking it, present proofs.

Every step takes the wallet and returns what changed; callers save the wallet afterwards
(:func:`accord.wallet.store.save`), so a refused step leaves the file as it was.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from accord.consent.credential import (
    CHANNEL,
    EXPIRES,
    HEADER,
    CredentialFields,
    Presentation,
    presentation_header,
    purpose_index,
)
from accord.crypto.bbs import blind
from accord.errors import InvalidInput, NotFound
from accord.wallet.store import StoredCredential, Wallet


@dataclass(frozen=True)
class CredentialRequest:
    """Sent to the channel: the commitment hides the holder secret, the id finds the blind."""

    request_id: str
    channel: str
    commitment: bytes


def request(wallet: Wallet, channel: str) -> CredentialRequest:
    commitment, prover_blind = blind.commit([wallet.secret()])
    request_id = secrets.token_hex(8)
    wallet.pending[request_id] = {"channel": channel, "prover_blind": f"{prover_blind:064x}"}
    return CredentialRequest(request_id, channel, commitment)


def accept(
    wallet: Wallet,
    request_id: str,
    public_key: bytes,
    signature: bytes,
    messages: Sequence[bytes],
) -> StoredCredential:
    """Keep an issued credential once it verifies over the layout and our own secret.

    A renewal replaces the channel's older credential.
    """
    pending = wallet.pending.get(request_id)
    if pending is None:
        raise NotFound(f"no pending request {request_id!r} in this wallet")
    fields = CredentialFields.from_messages(messages)
    if fields.channel != pending["channel"]:
        raise InvalidInput(
            f"the credential is from {fields.channel!r}, the request went to {pending['channel']!r}"
        )
    prover_blind = int(pending["prover_blind"], 16)
    blind.blind_verify(public_key, signature, HEADER, messages, [wallet.secret()], prover_blind)
    stored = StoredCredential(
        channel=fields.channel,
        public_key=public_key.hex(),
        signature=signature.hex(),
        messages=[m.hex() for m in messages],
        prover_blind=pending["prover_blind"],
        expires_at=fields.expires_at,
    )
    wallet.credentials = [c for c in wallet.credentials if c.channel != fields.channel]
    wallet.credentials.append(stored)
    del wallet.pending[request_id]
    return stored


def present(
    wallet: Wallet, channel: str, purpose: str, nonce: bytes, audience: str, now: int
) -> Presentation:
    """A fresh proof for one use: discloses the channel, the expiry and this purpose only."""
    index = purpose_index(purpose)
    held = [c for c in wallet.credentials if c.channel == channel]
    if not held:
        raise NotFound(f"this wallet holds no credential from {channel!r}")
    credential = held[0]
    if credential.expires_at <= now:
        raise InvalidInput(f"the credential from {channel!r} has expired: renew it")
    messages = [bytes.fromhex(m) for m in credential.messages]
    if purpose not in CredentialFields.from_messages(messages).purposes:
        raise InvalidInput(f"the consent given to {channel!r} does not cover {purpose!r}")
    proof = blind.blind_proof_gen(
        bytes.fromhex(credential.public_key),
        bytes.fromhex(credential.signature),
        HEADER,
        presentation_header(nonce, audience),
        messages,
        [wallet.secret()],
        [CHANNEL, EXPIRES, index],
        [],
        int(credential.prover_blind, 16),
    )
    return Presentation(channel, purpose, credential.expires_at, proof)


def prover(wallet: Wallet, now: int) -> Callable[[str, str, str], Presentation | None]:
    """A touchpoint's prover (:data:`accord.touchpoint.Prover`) over this wallet: for each node
    the wallet holds a credential of, a proof bound to the node's nonce with the node as
    audience; ``None`` for a node it holds none of, or whose consent does not cover the purpose
    (that node then decides whether it needs one)."""

    def prove(node: str, nonce: str, purpose: str) -> Presentation | None:
        if not any(c.channel == node for c in wallet.credentials):
            return None
        try:
            return present(wallet, node, purpose, nonce.encode(), node, now)
        except InvalidInput:
            return None

    return prove
