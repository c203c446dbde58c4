"""Real-time scoring at the coordinator: resolve, issue a credential, fan out, sum, decide.

``begin`` resolves the subject to an aligned row (the brand's reference through the label node,
or a channel's session token through that channel), refuses blocked (revoked) rows, and issues
the ephemeral SD-JWT credential for the nodes holding the customer. ``score`` takes the
touchpoint's per-node presentations and fans out in two phases with a deadline: CHECK (each node
verifies the credential and its consent gate; a node that is down or slow simply is not in the
answer) and COMPUTE over exactly the nodes that passed (masks cancel only over them). With
fewer than two such nodes the answer says so instead of scoring (P2, P8). The sum goes through
the top model and the calibration; the policy decides the action.

The explanation names the sources and the policy rule, never per-node contributions: those
would need sums over subsets, which would let anyone difference two answers into one node's
embedding. For the same reason each node contributes to one set of sources per customer and
model (:mod:`accord.node.scoring_sets`): a request whose set differs from the first one (a node
down, a presentation left out) gets "cannot score now", and a channel answers alone only for a
customer no other channel holds.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
import structlog
from sqlalchemy import Engine, text

from accord.clock import Clock, system_clock
from accord.consent.events import Record
from accord.consent.vocabulary import check_terms
from accord.coordinator.ledger.log import Ledger
from accord.coordinator.policy import Policy
from accord.credentials import issue
from accord.crypto import masking
from accord.crypto.keys import NoteSigner
from accord.errors import InvalidInput, NotFound, NotReady
from accord.proto.v1 import node_pb2, node_pb2_grpc, scoring_pb2, scoring_pb2_grpc
from accord.protocol import score_round_id
from accord.registry import RegistryView
from accord.rpc.roles import COORDINATOR
from accord.rpc.tls import PartyCredentials

if TYPE_CHECKING:  # models (and torch) load with the first request, not at start-up
    from accord.coordinator.model_store import LoadedModel

log = structlog.get_logger(__name__)

DEADLINE_S = 1.0
PENDING_TTL_S = 120
MODEL_RECHECK_S = 1.0


@dataclass(frozen=True)
class Pending:
    request_id: str
    row_key: bytes
    touchpoint: str
    purpose: str
    nodes: tuple[str, ...]
    model: str
    expires: float


@dataclass
class Answer:
    request_id: str
    scored: bool
    trust: float | None = None
    action: str = ""
    policy_version: str = ""
    sources: list[str] = field(default_factory=list)
    confidence: float = 0.0
    explanation: str = ""
    use_indexes: list[int] = field(default_factory=list)
    checkpoint: str = ""
    model: str = ""
    # expected spend, and its 80 % interval (none when one channel's own estimate answers)
    ltv: tuple[float, float | None, float | None] | None = None


class ScoringService:
    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        signer: NoteSigner,
        credentials: PartyCredentials,
        registry: Callable[[], RegistryView],
        policy: Policy,
        clock: Clock = system_clock,
        deadline_s: float = DEADLINE_S,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.signer = signer
        self.credentials = credentials
        self.registry = registry
        self.policy = policy
        self._clock = clock
        self.deadline = deadline_s
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        self._embed_stubs: dict[tuple[str, str], scoring_pb2_grpc.NodeScoringStub] = {}
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._model_checked = 0.0  # time.monotonic() of the last look for a newer model

    # -- set-up -----------------------------------------------------------------------------
    def record_policy(self) -> int:
        """Record the policy in use on the ledger (once per distinct policy)."""
        with self.engine.connect() as conn:
            known = conn.execute(
                text("SELECT ledger_index FROM policy_version WHERE digest = :d"),
                {"d": self.policy.digest},
            ).scalar()
        if known is not None:
            return int(known)
        now = int(self._clock())
        body = {
            "version": self.policy.version,
            "sha256": self.policy.digest,
            "rules": [r.name for r in self.policy.rules],
            "defaultAction": self.policy.default_action,
        }
        from accord.consent.events import encode

        (appended,) = self.ledger.append(
            [encode(Record(COORDINATOR, "policy.version", now, body))], appended_by=COORDINATOR
        )
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO policy_version (digest, version, ledger_index, activated_at) "
                    "VALUES (:d, :v, :i, :t)"
                ),
                {"d": self.policy.digest, "v": self.policy.version, "i": appended.index, "t": now},
            )
        return appended.index

    def model(self) -> LoadedModel:
        """The network's model: its newest trust model, or, on a network that has only
        learnt lifetime value, its newest LTV model. Weights load only when a newer one lands;
        which one is newest is read at most every ``MODEL_RECHECK_S`` (a model published by
        another process is in use that much later at most)."""
        loaded = self._model
        if loaded is not None and time.monotonic() < self._model_checked + MODEL_RECHECK_S:
            return loaded
        with self.engine.connect() as conn:
            newest = conn.execute(
                text(
                    "SELECT model_id, kind FROM model_version WHERE kind IN ('trust', 'ltv') "
                    "ORDER BY CASE kind WHEN 'trust' THEN 0 ELSE 1 END, created_at DESC LIMIT 1"
                )
            ).first()
        if newest is None:
            raise NotFound("no trained model yet: run `accord train` after an alignment")
        from accord.coordinator.model_store import load_model

        model_id, kind = str(newest[0]), str(newest[1])
        if self._model is None or self._model.model_id != model_id:
            self._model = load_model(self.engine, model_id, kind=kind)
        self._model_checked = time.monotonic()
        return self._model

    def _model_named(self, model_id: str) -> LoadedModel:
        """The model Begin chose for a request (the one its credential names, which the nodes
        embed with): the loaded one without a database read, since :meth:`model` chose it at
        Begin; otherwise the newest, if it is still that one."""
        loaded = self._model
        if loaded is not None and loaded.model_id == model_id:
            return loaded
        model = self.model()
        if model.model_id != model_id:
            raise NotReady("a new model was published since Begin: call Begin again")
        return model

    def _channel(self, endpoint: str, node: str) -> grpc.Channel:
        key = (endpoint, node)
        with self._lock:
            if key not in self._channels:
                self._channels[key] = self.credentials.channel(endpoint, node)
            return self._channels[key]

    def _embed_stub(self, endpoint: str, node: str) -> scoring_pb2_grpc.NodeScoringStub:
        key = (endpoint, node)
        stub = self._embed_stubs.get(key)
        if stub is None:
            stub = scoring_pb2_grpc.NodeScoringStub(self._channel(endpoint, node))
            with self._lock:
                self._embed_stubs[key] = stub
        return stub

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    # -- begin ------------------------------------------------------------------------------
    def _row_of(
        self, model: LoadedModel, subject: scoring_pb2.Subject, view: RegistryView
    ) -> bytes:
        which = subject.WhichOneof("ref")
        if which == "brand_ref":
            label = next((n for n in view.nodes if n.role == "label"), None)
            if label is None:
                raise NotReady("no label node is registered")
            request = node_pb2.ResolveRequest(
                alignment_run=model.alignment_run, brand_ref=subject.brand_ref
            )
            stub = node_pb2_grpc.NodeServiceStub(self._channel(label.endpoint, label.channel))
            return bytes(stub.Resolve(request, timeout=self.deadline).row_key)
        if which == "touchpoint_token":
            channel, _, token = subject.touchpoint_token.partition(":")
            node = view.node(channel)
            if node is None or not token:
                raise InvalidInput(
                    "a touchpoint token reads <channel>:<token> from a registered channel"
                )
            request = node_pb2.ResolveRequest(alignment_run=model.alignment_run, token=token)
            stub = node_pb2_grpc.NodeServiceStub(self._channel(node.endpoint, node.channel))
            their_key = bytes(stub.Resolve(request, timeout=self.deadline).row_key)
            with self.engine.connect() as conn:
                row = conn.execute(
                    text(
                        "SELECT row_key FROM aligned_row WHERE run_id = :r AND node = :n "
                        "AND node_row_key = :k"
                    ),
                    {"r": model.alignment_run, "n": channel, "k": their_key},
                ).scalar()
            if row is None:
                raise NotFound("that session's customer is not aligned")
            return bytes(row)
        raise InvalidInput("name the subject by brand_ref or touchpoint_token")

    def begin(
        self, touchpoint: str, subject: scoring_pb2.Subject, purpose: str, holder_jwk: str
    ) -> tuple[Pending | None, str, str]:
        """(pending request, credential, refusal): refusal is set when nothing can be scored."""
        if not touchpoint or len(touchpoint) > 64:
            raise InvalidInput("touchpoint must be 1-64 characters")
        check_terms("purposes", (purpose,), "purpose")
        model = self.model()
        view = self.registry()
        try:
            row = self._row_of(model, subject, view)
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            if code == grpc.StatusCode.NOT_FOUND:
                return (
                    None,
                    "",
                    "the customer is not among the aligned customers of the current model",
                )
            raise NotReady("the subject could not be resolved now; retry") from err
        with self.engine.connect() as conn:
            blocked = conn.execute(
                text("SELECT 1 FROM blocked_row WHERE run_id = :r AND row_key = :k"),
                {"r": model.alignment_run, "k": row},
            ).first()
            keys: dict[str, bytes] = dict(
                conn.execute(
                    text(
                        "SELECT node, node_row_key FROM aligned_row "
                        "WHERE run_id = :r AND row_key = :k"
                    ),
                    {"r": model.alignment_run, "k": row},
                ).all()
            )
        if blocked is not None:
            return None, "", "the customer revoked consent: no score, no use"
        peers = {n.channel: n.kx_key for n in view.nodes}
        nodes = {n: (peers[n], bytes(keys[n])) for n in model.nodes if n in keys and n in peers}
        if len(nodes) < masking.MIN_NODES and not _answers_alone(model, nodes):
            return (
                None,
                "",
                f"only {len(nodes)} source(s) hold this customer: "
                "cannot score without exposing one",
            )
        request_id = secrets.token_hex(12)
        now = int(self._clock())
        issued = issue(
            self.signer,
            request_id=request_id,
            purposes=[purpose],
            touchpoint=touchpoint,
            model=model.model_id,
            nodes=nodes,
            holder_jwk=holder_jwk,
            now=now,
        )
        pending = Pending(
            request_id,
            row,
            touchpoint,
            purpose,
            tuple(sorted(nodes)),
            model.model_id,
            time.monotonic() + PENDING_TTL_S,
        )
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if v.expires > time.monotonic()}
            self._pending[request_id] = pending
        return pending, issued.credential, ""

    # -- score ------------------------------------------------------------------------------
    def _fan_out(
        self, calls: Mapping[str, scoring_pb2.EmbedRequest]
    ) -> dict[str, scoring_pb2.EmbedResponse | Exception]:
        view = self.registry()
        endpoints = {n.channel: n.endpoint for n in view.nodes}
        # grpcio futures: all calls in flight at once, no thread hand-off per call.
        futures = {
            n: self._embed_stub(endpoints[n], n).Embed.future(calls[n], timeout=self.deadline)
            for n in calls
            if n in endpoints
        }
        out: dict[str, scoring_pb2.EmbedResponse | Exception] = {
            n: NotFound(f"{n} is not registered") for n in calls if n not in futures
        }
        out.update(_gather(futures, self.deadline))
        return {n: out[n] for n in calls}

    def score(
        self,
        request_id: str,
        presentations: Mapping[str, str],
        consent_proofs: Mapping[str, scoring_pb2.ConsentProof] | None = None,
    ) -> Answer:
        """``consent_proofs``: the customer's consent proof per node, relayed untouched (each
        node checks its own; :mod:`accord.node.consent_proofs`)."""
        proofs = dict(consent_proofs or {})
        with self._lock:
            pending = self._pending.pop(request_id, None)
        if pending is None:
            raise NotFound("unknown or expired request: call Begin again")
        model = self._model_named(pending.model)
        extra = set(presentations) - set(pending.nodes)
        if extra:
            raise InvalidInput(
                f"presentations for nodes not in the request: {', '.join(sorted(extra))}"
            )
        asked = [n for n in pending.nodes if n in presentations]
        checks = self._fan_out(
            {
                n: scoring_pb2.EmbedRequest(
                    request_id=request_id,
                    sd_jwt=presentations[n],
                    phase=scoring_pb2.EMBED_PHASE_CHECK,
                    purpose=pending.purpose,
                    consent_proof=proofs.get(n),
                )
                for n in asked
            }
        )
        ready = sorted(
            n for n, r in checks.items() if isinstance(r, scoring_pb2.EmbedResponse) and r.permitted
        )
        left_out = {n: _why(r) for n, r in checks.items() if n not in ready}
        total_nodes = len(model.nodes)
        # a channel answers alone only for a customer nobody else holds: when others hold
        # them but left no presentation (or failed CHECK), a lone estimate would stand in for
        # the sum they would have joined
        if len(pending.nodes) == 1 and _answers_alone(model, ready):
            return self._own_estimate(
                model, pending, presentations[ready[0]], ready[0], left_out, proofs
            )
        if len(ready) < masking.MIN_NODES:
            return self._not_scored(
                request_id,
                ready,
                model,
                (
                    f"cannot score: {len(ready)} of {total_nodes} sources could contribute"
                    f"{_left_out(left_out)}; at least {masking.MIN_NODES} are needed so no single "
                    "source is exposed"
                ),
            )
        computed = self._fan_out(
            {
                n: scoring_pb2.EmbedRequest(
                    request_id=request_id,
                    sd_jwt=presentations[n],
                    phase=scoring_pb2.EMBED_PHASE_COMPUTE,
                    participants=ready,
                    purpose=pending.purpose,
                    consent_proof=proofs.get(n),
                )
                for n in ready
            }
        )
        failed = {
            n: _why(r) for n, r in computed.items() if not isinstance(r, scoring_pb2.EmbedResponse)
        }
        held = _held_to_another_set(computed)
        if held:
            return self._not_scored(
                request_id,
                ready,
                model,
                (
                    f"cannot score now: {', '.join(held)} already scored this customer from "
                    "another set of sources under this model, and sums over two sets would "
                    f"expose one source{_left_out(left_out)}; the next model can score them"
                ),
            )
        if failed:
            return self._not_scored(
                request_id,
                ready,
                model,
                (f"a source failed during the request{_left_out(failed)}: call Begin again"),
            )
        round_id = score_round_id(request_id, ready)
        replies = {n: r for n, r in computed.items() if isinstance(r, scoring_pb2.EmbedResponse)}
        masked = [
            masking.MaskedEmbedding.from_bytes(round_id, n, (1, replies[n].dim), replies[n].masked)
            for n in ready
        ]
        total = masking.aggregate(masked, ready, expected_round_id=round_id)
        sources = np.array([[n in ready for n in model.nodes]])
        output = model.top.logits(total, sources)
        trust: float | None = None
        ltv: tuple[float, float, float] | None = None
        if model.kind == "ltv":
            from accord.scoring import ziln

            params = model.spend_scale.apply(ziln.params_from_output_array(output))
            low, high = params.interval(0.8)
            ltv = (
                round(float(params.expected()[0]), 2),
                round(float(low[0]), 2),
                round(float(high[0]), 2),
            )
            what = f"LTV {ltv[0]:,.2f} (80 % interval {ltv[1]:,.2f}-{ltv[2]:,.2f})"
        else:
            p_default = float(model.trust_calibrator.probabilities(output)[0])
            trust = round(100.0 * (1.0 - p_default), 1)
            what = f"trust {trust:g}/100"
        decision = self.policy.decide(pending.touchpoint, trust, ltv[0] if ltv else None)
        confidence = round(len(ready) / total_nodes, 2)
        checkpoint = self.ledger.checkpoint().note
        return Answer(
            request_id,
            True,
            trust,
            decision.action,
            f"{self.policy.version} ({self.policy.digest[:12]})",
            ready,
            confidence,
            (
                f"{what} from {len(ready)} of {total_nodes} sources "
                f"({', '.join(ready)}){_left_out(left_out)}; policy rule {decision.rule!r} "
                f"({decision.because}) at touchpoint {pending.touchpoint!r}"
            ),
            [int(replies[n].use_index) for n in ready],
            checkpoint,
            model.model_id,
            ltv,
        )

    def _own_estimate(
        self,
        model: LoadedModel,
        pending: Pending,
        presentation: str,
        node: str,
        left_out: Mapping[str, str],
        proofs: Mapping[str, scoring_pb2.ConsentProof],
    ) -> Answer:
        """One channel alone could answer an LTV request: its own estimate, scaled by the
        model's factor for it. No masked sum, so no embedding; no interval, since the channel's
        own model gives an expectation only."""
        total_nodes = len(model.nodes)
        reply = self._fan_out(
            {
                node: scoring_pb2.EmbedRequest(
                    request_id=pending.request_id,
                    sd_jwt=presentation,
                    phase=scoring_pb2.EMBED_PHASE_OWN_ESTIMATE,
                    purpose=pending.purpose,
                    consent_proof=proofs.get(node),
                )
            }
        )[node]
        if not isinstance(reply, scoring_pb2.EmbedResponse):
            return self._not_scored(
                pending.request_id,
                [node],
                model,
                (
                    f"cannot score: {node}, the one source that could contribute, failed "
                    f"({_why(reply)}); call Begin again"
                ),
            )
        scale = model.own_channel_scales[node]
        value = round(float(reply.own_estimate) * scale, 2)
        decision = self.policy.decide(pending.touchpoint, None, value)
        return Answer(
            pending.request_id,
            True,
            None,
            decision.action,
            f"{self.policy.version} ({self.policy.digest[:12]})",
            [node],
            round(1 / total_nodes, 2),
            (
                f"LTV {value:,.2f} from 1 of {total_nodes} sources ({node}): {node}'s own "
                f"estimate from its purchases, scaled by {scale:.3f}; no interval, and not the "
                f"shared model, which needs {masking.MIN_NODES} sources so none is exposed"
                f"{_left_out(left_out)}; policy rule {decision.rule!r} ({decision.because}) at "
                f"touchpoint {pending.touchpoint!r}"
            ),
            [int(reply.use_index)],
            self.ledger.checkpoint().note,
            model.model_id,
            (value, None, None),
        )

    def _not_scored(
        self, request_id: str, sources: list[str], model: LoadedModel, explanation: str
    ) -> Answer:
        """An answer that scores nothing and says why (the model and policy still named)."""
        return Answer(
            request_id,
            False,
            sources=sources,
            model=model.model_id,
            policy_version=self.policy.version,
            explanation=explanation,
        )

    def probe(self) -> list[str]:
        """The floor: the same fan-out to the same nodes, doing no work (health checks)."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        view = self.registry()
        nodes = [n for n in view.nodes if n.role == "feature"]
        futures = {
            n.channel: health_pb2_grpc.HealthStub(
                self._channel(n.endpoint, n.channel)
            ).Check.future(health_pb2.HealthCheckRequest(), timeout=self.deadline)
            for n in nodes
        }
        results = _gather(futures, self.deadline)
        return [n.channel for n in nodes if not isinstance(results[n.channel], Exception)]


def _answers_alone(model: LoadedModel, nodes: Collection[str]) -> bool:
    """Whether the one node in ``nodes`` may answer alone: LTV models only, and only a channel
    the model has a factor for (it released its group sum when the model was trained)."""
    return model.kind == "ltv" and len(nodes) == 1 and next(iter(nodes)) in model.own_channel_scales


def _held_to_another_set(results: Mapping[str, object]) -> list[str]:
    """The nodes that refused COMPUTE because the customer is theirs to score from another set
    (:mod:`accord.node.scoring_sets`): a refusal that retrying cannot lift."""
    return sorted(
        n
        for n, r in results.items()
        if isinstance(r, grpc.RpcError) and _code(r) == grpc.StatusCode.FAILED_PRECONDITION
    )


def _gather(futures: Mapping[str, grpc.Future[Any]], deadline_s: float) -> dict[str, Any]:
    """Each in-flight call's reply, or the exception that stands for it, after at most
    ``deadline_s`` (and a little slack) for all of them together."""
    give_up = time.monotonic() + deadline_s + 0.5
    out: dict[str, Any] = {}
    for node, future in futures.items():
        try:
            out[node] = future.result(timeout=max(0.0, give_up - time.monotonic()))
        except grpc.FutureTimeoutError:
            future.cancel()
            out[node] = TimeoutError(f"{node} missed the deadline")
        except grpc.RpcError as err:
            if _code(err) == grpc.StatusCode.DEADLINE_EXCEEDED:
                out[node] = TimeoutError(f"{node} missed the deadline")
            else:
                out[node] = err
        except Exception as err:  # cancelled, or anything else: the node is left out
            out[node] = err
    return out


def _code(err: grpc.RpcError) -> grpc.StatusCode | None:
    return err.code() if hasattr(err, "code") else None


def _why(result: object) -> str:
    if isinstance(result, scoring_pb2.EmbedResponse):
        return "no valid consent for this purpose"
    if isinstance(result, TimeoutError):
        return "missed the deadline"
    if isinstance(result, grpc.RpcError):
        code = result.code() if hasattr(result, "code") else None
        details = result.details() if hasattr(result, "details") else None
        if code == grpc.StatusCode.PERMISSION_DENIED and details and "consent proof" in details:
            # the node's reason (missing, purpose, expired, replayed, ...): the touchpoint's to fix
            return str(details).split(":", 1)[0]
        return (
            "unreachable"
            if code == grpc.StatusCode.UNAVAILABLE
            else f"refused ({code.name if code else '?'})"
        )
    return "failed"


def _left_out(reasons: Mapping[str, str]) -> str:
    if not reasons:
        return ""
    return "; left out: " + ", ".join(f"{n} ({why})" for n, why in sorted(reasons.items()))
