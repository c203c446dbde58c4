"""The customer's consent proof at each use, checked by the node before any data is touched.

At a scoring touchpoint the customer's side presents to each channel a BBS proof of the consent
credential that channel issued (:mod:`accord.consent.credential`), disclosing only the channel,
the purpose used and the expiry, bound to the request: its presentation header is this node's
nonce of the request (from the coordinator's relationship credential, which the node verified)
with this node as audience. The node checks it before its consent gate, and the gate writes it
onto the ledger with the ``data.use`` (:class:`accord.consent.events.UseProof`), where any
auditor re-checks it against the key this node published (:class:`IssuerKey`).

Whether a proof is required is the node's policy (``accord node serve
--require-consent-proofs``): the node holds the data and answers for its uses. Without it a
missing proof is accepted as before (the node's own consent record still gates every use), but
a proof that is supplied must be valid. Every refusal is logged: in this process's log and as a
``use.refused`` entry on the ledger naming only the node, the purpose and the reason.

Replay: a proof for one request does not verify for another (its header names the nonce); to
say so rather than "does not verify", the node keeps the digest of every proof it accepted
(:class:`accord.node.replay_cache.UsedCredentials`, in its store) until the credential expires.
"""

from __future__ import annotations

import hashlib
import threading
from typing import NoReturn

import structlog
from sqlalchemy import Engine

from accord.clock import Clock, system_clock
from accord.consent.credential import (
    Presentation,
    PresentationRefused,
    use_proof,
    verify_presentation,
)
from accord.consent.events import IssuerKey, UseProof, UseRefused
from accord.credentials import CredentialRejected
from accord.crypto.bbs import sk_to_pk
from accord.errors import NotPermitted
from accord.ledger_writer import EventLedger
from accord.node.replay_cache import UsedCredentials

log = structlog.get_logger(__name__)

_PHASE = "proof"


class UseRefusedError(NotPermitted):
    """A use refused for its consent proof; ``reason`` is one of
    :data:`accord.consent.events.REFUSAL_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"consent proof refused ({reason}): {message}")
        self.reason = reason


def proof_digest(proof: bytes) -> str:
    return hashlib.sha256(b"accord consent proof\n" + proof).hexdigest()


class UseProofs:
    """One node's checks of consent proofs and its issuer key's publication."""

    def __init__(
        self,
        engine: Engine,
        channel: str,
        issuer_sk: bytes,
        ledger: EventLedger,
        clock: Clock = system_clock,
        *,
        required: bool = False,
    ) -> None:
        self.channel = channel
        self.public_key = sk_to_pk(issuer_sk)
        self.required = required
        self._ledger = ledger
        self._clock = clock
        self._used = UsedCredentials(engine, clock)
        self._published = False
        self._lock = threading.Lock()
        # proofs accepted in CHECK, by digest -> (nonce, purpose, expiry) they were checked for:
        # COMPUTE presents the same bytes for the same request and purpose and need not pay a
        # second verification; anything else is verified (and refused) afresh
        self._accepted: dict[str, tuple[str, str, int]] = {}

    def publish_key(self) -> None:
        """Put this node's issuer key on the ledger once per process, before the first use that
        cites a proof (a duplicate after a restart is harmless: the latest one counts)."""
        with self._lock:
            if self._published:
                return
            self._ledger.append([IssuerKey(self.channel, int(self._clock()), self.public_key)])
            self._published = True

    def check(
        self, presentation: Presentation | None, *, purpose: str, nonce: str, request_id: str
    ) -> UseProof | None:
        """The proof to log with the use, ``None`` when none was given and none is required;
        raise :class:`UseRefusedError` (after logging the refusal) otherwise."""
        if presentation is None:
            if self.required:
                self._refuse(purpose, "missing", "this node requires the customer's proof")
            return None
        now = int(self._clock())
        digest = proof_digest(presentation.proof)
        with self._lock:
            known = self._accepted.get(digest)
        if known is None or known[:2] != (nonce, purpose) or known[2] <= now:
            try:
                verify_presentation(
                    self.public_key,
                    presentation,
                    channel=self.channel,
                    purpose=purpose,
                    nonce=nonce.encode(),
                    audience=self.channel,
                    now=now,
                )
            except PresentationRefused as refused:
                reason = refused.reason
                if reason == "proof" and self._used.was_used(digest):
                    self._refuse(purpose, "replayed", "this proof was used for another request")
                self._refuse(purpose, reason, str(refused))
            try:
                self._used.use(digest, _PHASE, presentation.expires_at, now)
            except CredentialRejected:
                self._refuse(purpose, "replayed", "this proof was already used")
            with self._lock:
                if len(self._accepted) > 4096:
                    self._accepted = {k: v for k, v in self._accepted.items() if v[2] > now}
                self._accepted[digest] = (nonce, purpose, presentation.expires_at)
        self.publish_key()
        log.debug("consent proof accepted", purpose=purpose, request=request_id)
        return use_proof(presentation, nonce.encode())

    def _refuse(self, purpose: str, reason: str, message: str) -> NoReturn:
        log.warning("use refused", channel=self.channel, purpose=purpose, reason=reason)
        try:
            self._ledger.append([UseRefused(self.channel, purpose, int(self._clock()), reason)])
        except Exception as exc:  # the refusal stands whether or not the ledger took its record
            log.error("could not log a refused use", reason=reason, error=str(exc))
        raise UseRefusedError(reason, message)
