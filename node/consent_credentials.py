"""Issuing a customer-held consent credential over the consent this channel recorded.

The channel's systems pass on the customer's blind commitment (:func:`accord.wallet.holder.
request`); the node signs the credential's fixed layout (:mod:`accord.consent.credential`)
from its own consent record: the latest granted, unexpired and unrevoked one. Credentials live
until a UTC midnight at most ``ttl_days`` ahead and never past the consent; renewal is the same
call, so once the consent is revoked (or expired, or erased) nothing more is issued, and the
gate refuses their uses at once regardless of a credential still unexpired.
"""

from __future__ import annotations

from dataclasses import dataclass

from accord.clock import Clock, system_clock
from accord.consent import credential
from accord.consent.vocabulary import PURPOSES
from accord.crypto.bbs import sk_to_pk
from accord.errors import NotReady
from accord.node.consent import ConsentBook


@dataclass(frozen=True)
class IssuedCredential:
    public_key: bytes
    signature: bytes
    messages: list[bytes]
    expires_at: int


class CredentialIssuer:
    def __init__(
        self,
        book: ConsentBook,
        issuer_sk: bytes,
        clock: Clock = system_clock,
        ttl_days: int = credential.DEFAULT_TTL_DAYS,
    ) -> None:
        self._book = book
        self._sk = issuer_sk
        self.public_key = sk_to_pk(issuer_sk)
        self._clock = clock
        self._ttl_days = ttl_days

    def issue(self, local_ref: str, commitment: bytes) -> IssuedCredential:
        now = int(self._clock())
        current = [
            r
            for r in self._book.records(local_ref)
            if r.status == "granted" and r.grant_index is not None and r.terms.expires_at > now
        ]
        if not current:
            raise NotReady(
                "no granted, unexpired consent on the ledger for this customer: nothing to "
                "issue or renew (a revoked consent is not renewable)"
            )
        terms = current[-1].terms  # the latest given
        fields = credential.CredentialFields(
            self._book.channel,
            credential.credential_expiry(now, terms.expires_at, self._ttl_days),
            terms.notice_version,
            terms.jurisdiction,
            tuple(p for p in PURPOSES if p in terms.purposes),
        )
        signature, messages = credential.issue(self._sk, self.public_key, commitment, fields)
        return IssuedCredential(self.public_key, signature, messages, fields.expires_at)
