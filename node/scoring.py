"""A node's part in real-time scoring: verify the credential, pass the gate, embed, mask.

Two phases per request, so that masks cancel over exactly the nodes that contribute and the
coordinator never decodes a sum of fewer than two: CHECK verifies the presentation and asks the
consent gate (nothing computed, nothing logged); COMPUTE, with the final participant set,
computes this node's embedding of the customer, masks it and logs the use.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine

from accord.clock import Clock, system_clock
from accord.consent.credential import Presentation
from accord.consent.events import UseProof
from accord.credentials import VerifiedCredential, verify
from accord.crypto import masking
from accord.crypto.keys import KeyAgreementKey, NoteVerifier
from accord.errors import InvalidInput, NotFound, NotPermitted
from accord.node.alignment import NodeAlignment
from accord.node.consent_proofs import UseProofs
from accord.node.embed_batch import BatchedForward
from accord.node.gate import ConsentGate
from accord.node.own_spend import OwnSpend
from accord.node.replay_cache import UsedCredentials
from accord.node.scoring_sets import ScoringSets
from accord.protocol import SCORE_PURPOSE, score_round_id

if TYPE_CHECKING:  # torch loads with the first model a request needs, not at start-up
    from accord.node.training import KeptModel


@dataclass(frozen=True)
class Embedded:
    masked: bytes
    dim: int
    use_index: int


@dataclass(frozen=True)
class OwnEstimate:
    value: float  # the channel's own expected spend, before the network's scale
    use_index: int


class ScoringParticipant:
    def __init__(
        self,
        engine: Engine,
        channel: str,
        gate: ConsentGate,
        alignment: NodeAlignment,
        kx_key: KeyAgreementKey,
        peers: Mapping[str, bytes] | None,
        coordinator_key: NoteVerifier,
        clock: Clock = system_clock,
        peers_source: object = None,
        own_spend: OwnSpend | None = None,
        proofs: UseProofs | None = None,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.gate = gate
        self.alignment = alignment
        self.kx_key = kx_key
        self._peers = dict(peers) if peers else None
        self._peers_source = peers_source  # callable giving peers' X25519 keys (registry)
        self.coordinator_key = coordinator_key
        self._clock = clock
        self._own_spend = own_spend
        self._proofs = proofs  # the customer's consent proofs (None: this node issues none)
        self._replay = UsedCredentials(engine, clock)  # in the store: survives a restart
        self._sets = ScoringSets(engine, clock)
        self._models: dict[str, KeptModel] = {}
        self._forwards: dict[str, BatchedForward] = {}  # one pass for concurrent requests' rows
        # presentations verified in CHECK, so COMPUTE (same bytes) does not verify them again
        self._verified: dict[bytes, tuple[VerifiedCredential, str]] = {}
        self._lock = threading.Lock()

    def _peer_keys(self) -> Mapping[str, bytes]:
        if self._peers_source is not None:
            return self._peers_source()  # type: ignore[operator, no-any-return]
        return self._peers or {}

    def _model(self, model_id: str) -> KeptModel:
        from accord.node.training import load_kept_model

        with self._lock:
            if model_id not in self._models:
                self._models[model_id] = load_kept_model(self.engine, model_id)
            return self._models[model_id]

    def _forward(self, model_id: str) -> BatchedForward:
        model = self._model(model_id)
        with self._lock:
            if model_id not in self._forwards:
                self._forwards[model_id] = BatchedForward(model.embed)
            return self._forwards[model_id]

    def _credential(
        self, presentation: str, purpose: str, phase: str
    ) -> tuple[VerifiedCredential, str]:
        now = int(self._clock())
        digest = hashlib.sha256(presentation.encode() + b"\x00" + purpose.encode()).digest()
        with self._lock:
            known = self._verified.get(digest)
        if known is not None and known[0].expires >= now:
            cred, local_ref = known  # verified in CHECK a moment ago: the same bytes
        else:
            cred = verify(
                presentation,
                node=self.channel,
                kx_key=self.kx_key,
                issuer=self.coordinator_key,
                purpose=purpose,
                now=now,
            )
            model = self._model(cred.model)
            local_ref = self.alignment.local_ref(model.alignment_run, cred.row_key)
            with self._lock:
                if len(self._verified) > 4096:
                    self._verified = {
                        k: v for k, v in self._verified.items() if v[0].expires >= now
                    }
                self._verified[digest] = (cred, local_ref)
        self._replay.use(cred.nonce, phase, cred.expires, now)
        return cred, local_ref

    def _use_proof(
        self, cred: VerifiedCredential, consent: Presentation | None, purpose: str
    ) -> UseProof | None:
        """The customer's consent proof, checked before the gate reads anything; bound to this
        node's nonce of the request, which the coordinator's credential carried."""
        if self._proofs is None:
            if consent is not None:
                raise InvalidInput(f"{self.channel} issues no consent credentials to prove")
            return None
        return self._proofs.check(
            consent, purpose=purpose, nonce=cred.nonce, request_id=cred.request_id
        )

    def check(
        self,
        request_id: str,
        presentation: str,
        purpose: str,
        consent: Presentation | None = None,
    ) -> bool:
        cred, local_ref = self._credential(presentation, purpose, "check")
        if cred.request_id != request_id:
            raise InvalidInput("the credential belongs to another request")
        self._use_proof(cred, consent, purpose)
        return local_ref in self.gate.permits(purpose, [local_ref])

    def compute(
        self,
        request_id: str,
        presentation: str,
        purpose: str,
        participants: Sequence[str],
        consent: Presentation | None = None,
    ) -> Embedded:
        cred, local_ref = self._credential(presentation, purpose, "compute")
        if cred.request_id != request_id:
            raise InvalidInput("the credential belongs to another request")
        proof = self._use_proof(cred, consent, purpose)
        names = sorted(set(participants))
        if self.channel not in names or len(names) < masking.MIN_NODES:
            raise InvalidInput("a scoring round needs this node and at least one other")
        peers = self._peer_keys()
        missing = [n for n in names if n != self.channel and n not in peers]
        if missing:
            raise NotPermitted(f"unknown participants {', '.join(missing)}: not in the registry")
        # one set per (model, customer), claimed before anything is logged or released
        self._sets.hold(cred.model, local_ref, names)
        rows = self.gate.require(purpose, request_id, local_ref, proof)  # logs the use
        embedding = self._forward(cred.model)(rows.features)
        masked = masking.mask_embedding(
            self.channel,
            self.kx_key,
            {n: peers[n] for n in names if n != self.channel},
            score_round_id(request_id, names),
            embedding.astype(np.float64),
            purpose=SCORE_PURPOSE,  # the masking domain of scoring rounds
        )
        return Embedded(masked.to_bytes(), int(embedding.shape[1]), rows.use_indexes[0])

    def own_estimate(
        self,
        request_id: str,
        presentation: str,
        purpose: str,
        consent: Presentation | None = None,
    ) -> OwnEstimate:
        """The channel's own spend estimate of the customer, for a request it alone serves.

        The same credential checks and gate as :meth:`compute` (and the same replay phase: a
        presentation computes once, either way); the coordinator asks only for a customer no other
        node holds (the credential's audience is this node alone), and this node checks it."""
        cred, local_ref = self._credential(presentation, purpose, "compute")
        if cred.request_id != request_id:
            raise InvalidInput("the credential belongs to another request")
        proof = self._use_proof(cred, consent, purpose)
        if self._own_spend is None or not self._own_spend.has_model(cred.model):
            raise NotFound(f"{self.channel} keeps no own spend model for {cred.model}")
        if cred.audience != (self.channel,):
            # others hold this customer: their shared sum answers, or nothing does (a lone
            # estimate here would let whoever left their presentations out learn this one)
            others = ", ".join(a for a in cred.audience if a != self.channel)
            raise NotPermitted(
                f"{self.channel} answers alone only for customers no other source holds; "
                f"this one is also held by {others or 'nobody it was told of'}"
            )
        self._sets.hold(cred.model, local_ref, [self.channel])
        rows = self.gate.require(purpose, request_id, local_ref, proof)  # logs the use
        return OwnEstimate(self._own_spend.estimate(cred.model, rows), rows.use_indexes[0])
