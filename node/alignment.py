"""Alignment at a node: its side of the private set intersection, and the run's row keys.

The label node blinds its consented customers once per run (``prepare``) and answers each
channel's PSI stream; a channel node drives the stream (``align_with``) and learns which of its
customers the label node holds. Each node gives each of its matched customers a fresh random
16-byte row key for the run, different at every node, and keeps the run in memory until the
coordinator says commit (then the keys are stored) or abort (then nothing remains).

What each party learns: the channel learns the label node's candidate count and which of its
own customers are among them; the label node learns the channel's candidate count and which of
its own customers the channel holds; the coordinator learns counts, row keys and labels; nobody
sees another party's identifiers or can link blinded values across runs (fresh keys per run).
"""

from __future__ import annotations

import hashlib
import queue
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import grpc
from sqlalchemy import Engine, insert, text
from sqlmodel import Session, col, select

from accord.clock import Clock, system_clock
from accord.crypto.errors import CryptoError
from accord.crypto.keys import NoteVerifier
from accord.crypto.psi import POINT_BYTES, PsiKey, blind_points, check_blinded, reblind_batch
from accord.errors import Conflict, InvalidInput, NotFound, NotPermitted, Unavailable
from accord.node.gate import ConsentedRows, ConsentGate
from accord.node.models import AlignmentRow, NetworkBlock
from accord.proto.v1 import alignment_pb2, alignment_pb2_grpc
from accord.protocol import TICKET_DOMAIN
from accord.rowkeys import ROW_KEY_BYTES
from accord.rpc.client import describe_rpc_error
from accord.rpc.tls import PartyCredentials

# Per-request lookups (scoring) as plain parameterised SQL: an ORM round per call costs more
# than the query itself.
_ROW_KEY_OF = text("SELECT row_key FROM alignment_row WHERE run_id = :r AND local_ref = :l LIMIT 1")
_LOCAL_REF = text("SELECT local_ref FROM alignment_row WHERE run_id = :r AND row_key = :k")
_RUN_STORED = text("SELECT 1 FROM alignment_row WHERE run_id = :r LIMIT 1")

CHUNK = 20_000  # 640 KB of points per message
MAX_CANDIDATES = 10_000_000
PREPARE_WAIT_S = 120.0
# PSI streams one caller may hold open waiting for the label node's preparation: a genuine
# channel waits in one run at a time; more would let it tie up the label node's RPC threads
MAX_WAITING_PER_CALLER = 2
IDENTIFIERS: dict[int, int] = {
    alignment_pb2.IDENTIFIER_KIND_PHONE: 0,
    alignment_pb2.IDENTIFIER_KIND_EMAIL: 1,
}


@dataclass(frozen=True)
class Ticket:
    run_id: str
    label_node: str
    channels: tuple[str, ...]
    identifier: int
    purpose: str
    expires_at: int


def verify_ticket(
    signed: alignment_pb2.SignedTicket, coordinator: NoteVerifier, now: int
) -> Ticket:
    try:
        coordinator.verify(signed.signature, TICKET_DOMAIN + signed.ticket)
    except CryptoError as exc:
        raise NotPermitted("the alignment ticket is not signed by the coordinator") from exc
    ticket = alignment_pb2.AlignmentTicket()
    ticket.ParseFromString(signed.ticket)
    if ticket.expires_at < now:
        raise NotPermitted("the alignment ticket has expired; start a new run")
    if ticket.identifier not in IDENTIFIERS:
        raise InvalidInput("the ticket names no identifier kind")
    if not ticket.run_id or len(ticket.run_id) > 64:
        raise InvalidInput("the ticket's run id is malformed")
    return Ticket(
        ticket.run_id,
        ticket.label_node,
        tuple(ticket.channels),
        ticket.identifier,
        ticket.purpose,
        ticket.expires_at,
    )


def _chunks(values: Sequence[bytes]) -> Iterator[tuple[int, bytes, bool]]:
    if not values:
        yield 0, b"", True
        return
    for start in range(0, len(values), CHUNK):
        end = min(start + CHUNK, len(values))
        yield start, b"".join(values[start:end]), end == len(values)


def _split(chunk: alignment_pb2.PointChunk, expected_offset: int, what: str) -> list[bytes]:
    data = chunk.points
    if chunk.offset != expected_offset:
        raise InvalidInput(f"{what} chunk starts at {chunk.offset}, expected {expected_offset}")
    if len(data) % POINT_BYTES:
        raise InvalidInput(f"{what} chunk is not a whole number of {POINT_BYTES}-byte values")
    return [data[i : i + POINT_BYTES] for i in range(0, len(data), POINT_BYTES)]


@dataclass
class Candidates:
    """The customers a node enters into a run: consented, with a usable, unambiguous point."""

    refs: list[str]
    points: list[bytes]
    rows: ConsentedRows
    excluded_ambiguous: int = 0

    @classmethod
    def from_rows(cls, rows: ConsentedRows, identifier: int) -> Candidates:
        slot = IDENTIFIERS[identifier]
        owners: dict[bytes, list[str]] = {}
        for ref, pair in zip(rows.refs, rows.points, strict=True):
            point = pair[slot]
            if point is not None:
                owners.setdefault(point, []).append(ref)
        # Two customers with one identifier cannot be told apart by a match: leave both out.
        usable = [(p, refs[0]) for p, refs in owners.items() if len(refs) == 1]
        ambiguous = sum(len(refs) for refs in owners.values() if len(refs) > 1)
        return cls([r for _, r in usable], [p for p, _ in usable], rows, ambiguous)

    def consents_digest(self) -> tuple[bytes, int]:
        entered = set(self.refs)
        used = sorted(p.consent for p in self.rows.permits if p.local_ref in entered)
        return hashlib.sha256(b"".join(used)).digest(), len(used)


@dataclass
class LabelRun:
    ticket: Ticket
    key: PsiKey
    candidates: Candidates
    order: list[int]  # position in the shuffled list -> index into candidates
    row_keys: list[bytes]  # per candidate index
    # Own blinded values in shuffled order, filled by a background thread so the label node
    # blinds while the channel does (their cores work in parallel).
    blinded: list[bytes] = field(default_factory=list)
    ready: threading.Condition = field(default_factory=threading.Condition)
    matches: dict[str, list[int]] = field(default_factory=dict)  # channel -> positions by m

    def blind_all(self) -> None:
        points = self.candidates.points
        for start in range(0, len(self.order), CHUNK):
            part = blind_points(self.key, [points[i] for i in self.order[start : start + CHUNK]])
            with self.ready:
                self.blinded.extend(part)
                self.ready.notify_all()

    def _has(self, count: int) -> bool:
        return len(self.blinded) >= count

    def blinded_chunks(self) -> Iterator[tuple[int, bytes, bool]]:
        total = len(self.order)
        if total == 0:
            yield 0, b"", True
            return
        for start in range(0, total, CHUNK):
            end = min(start + CHUNK, total)
            with self.ready:
                self.ready.wait_for(partial(self._has, end), timeout=600)
                part = self.blinded[start:end]
            yield start, b"".join(part), end == total


@dataclass
class ChannelRun:
    ticket: Ticket
    matched_refs: list[str]
    row_keys: list[bytes]


class NodeAlignment:
    """The alignment runs of one node (kept in memory until committed or aborted)."""

    def __init__(
        self,
        engine: Engine,
        channel: str,
        role: str,
        gate: ConsentGate,
        credentials: PartyCredentials,
        coordinator_key: NoteVerifier,
        clock: Clock = system_clock,
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.role = role
        self.gate = gate
        self.credentials = credentials
        self.coordinator_key = coordinator_key
        self._clock = clock
        self._label_runs: dict[str, LabelRun] = {}
        self._tokens: dict[str, tuple[str, int]] = {}
        self._channel_runs: dict[str, ChannelRun] = {}
        self._finished: set[str] = set()  # runs committed or aborted while this process ran
        self._streams: set[tuple[str, str]] = set()  # (run, channel) PSI streams open
        self._waiting: dict[str, int] = {}  # caller -> streams waiting for a preparation
        self._lock = threading.Lock()

    def _ticket(self, signed: alignment_pb2.SignedTicket) -> Ticket:
        return verify_ticket(signed, self.coordinator_key, int(self._clock()))

    def _candidates(self, ticket: Ticket) -> Candidates:
        rows = self.gate.open(ticket.purpose, ticket.run_id, None)
        return Candidates.from_rows(rows, ticket.identifier)

    # -- label node -----------------------------------------------------------------------
    def prepare(self, signed: alignment_pb2.SignedTicket) -> int:
        ticket = self._ticket(signed)
        if self.role != "label" or ticket.label_node != self.channel:
            raise NotPermitted(f"{self.channel!r} is not this run's label node")
        with self._lock:
            if ticket.run_id in self._label_runs:
                raise Conflict(f"run {ticket.run_id} is already prepared")
        candidates = self._candidates(ticket)
        order = list(range(len(candidates.points)))
        secrets.SystemRandom().shuffle(order)
        key = PsiKey.generate(secrets.token_bytes)
        run = LabelRun(
            ticket,
            key,
            candidates,
            order,
            [secrets.token_bytes(ROW_KEY_BYTES) for _ in candidates.refs],
        )
        with self._lock:
            self._label_runs[ticket.run_id] = run
        threading.Thread(
            target=run.blind_all, name=f"blind-{ticket.run_id[:8]}", daemon=True
        ).start()
        return len(candidates.refs)

    def _label_run(self, run_id: str, wait_s: float = 0.0) -> LabelRun:
        give_up = time.monotonic() + wait_s
        while True:
            with self._lock:
                run = self._label_runs.get(run_id)
                over = run_id in self._finished
            if run is not None:
                return run
            if over:
                raise Conflict(f"run {run_id} is over at {self.channel!r}")
            if time.monotonic() >= give_up:
                raise NotFound(f"run {run_id!r} is not prepared at {self.channel!r}")
            time.sleep(0.02)

    def _run_is_over(self, run_id: str) -> bool:
        """Committed or aborted here: no stream of it can be answered any more (committed
        runs are in the store, so this holds across restarts too)."""
        with self._lock:
            if run_id in self._finished:
                return True
        with self.engine.connect() as conn:
            return conn.execute(_RUN_STORED, {"r": run_id}).first() is not None

    def _prepared_run(self, run_id: str, caller: str) -> LabelRun:
        """The run once the label node has prepared it. Waiting holds an RPC thread, so only a
        caller the signed ticket names waits, and only in ``MAX_WAITING_PER_CALLER`` streams."""
        with self._lock:
            run = self._label_runs.get(run_id)
            if run is not None:
                return run
            if self._waiting.get(caller, 0) >= MAX_WAITING_PER_CALLER:
                raise Unavailable(
                    f"{caller!r} already waits in {MAX_WAITING_PER_CALLER} PSI streams for runs "
                    "not prepared here; retry once those are answered"
                )
            self._waiting[caller] = self._waiting.get(caller, 0) + 1
        try:
            return self._label_run(run_id, wait_s=PREPARE_WAIT_S)
        finally:
            with self._lock:
                self._waiting[caller] -= 1
                if not self._waiting[caller]:
                    del self._waiting[caller]

    def psi(
        self, requests: Iterator[alignment_pb2.PsiMessage], caller: str
    ) -> Iterator[alignment_pb2.PsiMessage]:
        """The label node's side of one channel's PSI stream."""
        first = next(requests, None)
        if first is None or first.WhichOneof("body") != "hello":
            raise InvalidInput("a PSI stream opens with hello")
        hello = first.hello
        # Everything that can be checked without the run is checked before any waiting: the
        # coordinator's signature and expiry, this node, and the caller among the channels the
        # signed ticket names (a replayed or foreign ticket must not hold an RPC thread).
        ticket = self._ticket(hello.ticket)
        if ticket.label_node != self.channel:
            raise NotPermitted(f"{self.channel!r} is not this run's label node")
        if caller != hello.channel or hello.channel not in ticket.channels:
            raise NotPermitted(f"{caller!r} is not a channel of run {ticket.run_id}")
        if hello.count > MAX_CANDIDATES:
            raise InvalidInput(f"at most {MAX_CANDIDATES} candidates per run")
        stream = (ticket.run_id, hello.channel)
        with self._lock:
            if stream in self._streams:
                raise Conflict(f"{hello.channel!r} already has a PSI stream in run {ticket.run_id}")
            self._streams.add(stream)
        try:
            yield from self._psi(requests, hello, ticket)
        finally:
            with self._lock:
                self._streams.discard(stream)

    def _psi(
        self,
        requests: Iterator[alignment_pb2.PsiMessage],
        hello: alignment_pb2.PsiHello,
        ticket: Ticket,
    ) -> Iterator[alignment_pb2.PsiMessage]:
        if self._run_is_over(ticket.run_id):
            raise Conflict(f"run {ticket.run_id} is over at {self.channel!r}: start a new run")
        # The coordinator starts the label's preparation and the channels together.
        run = self._prepared_run(ticket.run_id, hello.channel)
        if ticket != run.ticket:
            raise NotPermitted(
                f"the ticket differs from the one run {ticket.run_id} was prepared with"
            )
        if hello.channel in run.matches:
            raise Conflict(f"{hello.channel!r} already aligned in run {ticket.run_id}")
        for offset, data, last in run.blinded_chunks():
            yield alignment_pb2.PsiMessage(
                blinded=alignment_pb2.PointChunk(offset=offset, points=data, last=last)
            )
        received = 0
        seen: set[bytes] = set()
        while True:
            message = next(requests, None)
            if message is None:
                raise InvalidInput("the PSI stream ended before the channel's values were all sent")
            kind = message.WhichOneof("body")
            if kind == "blinded":
                values = _split(message.blinded, received, "blinded")
                try:
                    check_blinded(values)
                    out = reblind_batch(run.key, values)
                except CryptoError as exc:
                    raise InvalidInput(
                        f"blinded values from {offset_label(received)}: {exc}"
                    ) from exc
                if seen.intersection(values):
                    raise InvalidInput("a blinded value repeats across chunks")
                seen.update(values)
                received += len(values)
                if received > hello.count:
                    raise InvalidInput(f"more values than the {hello.count} announced")
                yield alignment_pb2.PsiMessage(
                    reblinded=alignment_pb2.PointChunk(
                        offset=received - len(values),
                        points=b"".join(out),
                        last=message.blinded.last,
                    )
                )
                if message.blinded.last and received != hello.count:
                    raise InvalidInput(f"{received} values sent, {hello.count} announced")
            elif kind == "matches":
                if received != hello.count:
                    raise InvalidInput("matches came before all values were exchanged")
                positions = list(message.matches.positions)
                if len(set(positions)) != len(positions) or any(
                    p >= len(run.blinded) for p in positions
                ):
                    raise InvalidInput(
                        "match positions must be distinct and within the label node's list"
                    )
                if len(positions) > min(len(run.blinded), hello.count):
                    raise InvalidInput("more matches than either side has values")
                with self._lock:
                    run.matches[hello.channel] = positions
                yield alignment_pb2.PsiMessage(done=alignment_pb2.PsiDone(matched=len(positions)))
                return
            else:
                raise InvalidInput(f"unexpected {kind} message in a PSI stream")

    def report(self, run_id: str, channel: str) -> alignment_pb2.PairReport:
        run = self._label_run(run_id)
        positions = run.matches.get(channel)
        if positions is None:
            raise NotFound(f"{channel!r} has not aligned in run {run_id}")
        keys = b"".join(run.row_keys[run.order[p]] for p in positions)
        digest, used = run.candidates.consents_digest()
        return alignment_pb2.PairReport(
            run_id=run_id,
            channel=channel,
            candidates=len(run.candidates.refs),
            row_keys=keys,
            consents_digest=digest,
            consents_used=used,
        )

    def labels(self, run_id: str) -> Iterator[alignment_pb2.LabelChunk]:
        run = self._label_run(run_id)
        matched = sorted({run.order[p] for positions in run.matches.values() for p in positions})
        rows = run.candidates.rows
        index = {ref: i for i, ref in enumerate(rows.refs)}
        for start in range(0, len(matched), CHUNK):
            part = matched[start : start + CHUNK]
            yield alignment_pb2.LabelChunk(
                row_keys=b"".join(run.row_keys[c] for c in part),
                labels=[float(rows.features[index[run.candidates.refs[c]], 0]) for c in part],
            )

    # -- channel node ---------------------------------------------------------------------
    def align_with(
        self, signed: alignment_pb2.SignedTicket, label_endpoint: str
    ) -> alignment_pb2.PairReport:
        ticket = self._ticket(signed)
        if self.role != "feature" or self.channel not in ticket.channels:
            raise NotPermitted(f"{self.channel!r} is not a channel of run {ticket.run_id}")
        with self._lock:
            if ticket.run_id in self._channel_runs:
                raise Conflict(f"{self.channel!r} already aligned in run {ticket.run_id}")
        candidates = self._candidates(ticket)
        order = list(range(len(candidates.points)))
        secrets.SystemRandom().shuffle(order)
        key = PsiKey.generate(secrets.token_bytes)
        shuffled = [candidates.points[i] for i in order]
        outbox: queue.Queue[alignment_pb2.PsiMessage | None] = queue.Queue()

        def requests() -> Iterator[alignment_pb2.PsiMessage]:
            yield alignment_pb2.PsiMessage(
                hello=alignment_pb2.PsiHello(
                    ticket=signed, channel=self.channel, count=len(shuffled)
                )
            )
            for start in range(0, max(len(shuffled), 1), CHUNK):
                part = shuffled[start : start + CHUNK]
                yield alignment_pb2.PsiMessage(
                    blinded=alignment_pb2.PointChunk(
                        offset=start,
                        points=b"".join(blind_points(key, part)),
                        last=start + CHUNK >= len(shuffled),
                    )
                )
            while (message := outbox.get()) is not None:
                yield message

        theirs: list[bytes] = []
        mine: list[bytes] = []
        with self.credentials.channel(label_endpoint, ticket.label_node) as channel:
            stub = alignment_pb2_grpc.NodeAlignmentStub(channel)
            try:
                for reply in stub.Psi(requests(), timeout=600):
                    kind = reply.WhichOneof("body")
                    if kind == "blinded":
                        values = _split(reply.blinded, len(theirs), "label's blinded")
                        theirs.extend(reblind_batch(key, values))
                    elif kind == "reblinded":
                        mine.extend(_split(reply.reblinded, len(mine), "reblinded"))
                        if reply.reblinded.last:
                            outbox.put(
                                alignment_pb2.PsiMessage(
                                    matches=alignment_pb2.PsiMatches(positions=_match(mine, theirs))
                                )
                            )
                            outbox.put(None)
                    elif kind == "done":
                        break
            except grpc.RpcError as err:
                outbox.put(None)
                raise Unavailable(
                    describe_rpc_error(err, f"label node {ticket.label_node!r}")
                ) from err
            except BaseException:
                outbox.put(None)
                raise
        if len(mine) != len(shuffled):
            raise Unavailable("the label node did not return every value")
        their_positions = {value: p for p, value in enumerate(theirs)}
        matched = [(their_positions[v], i) for i, v in enumerate(mine) if v in their_positions]
        matched_refs = [candidates.refs[order[i]] for _, i in matched]
        row_keys = [secrets.token_bytes(ROW_KEY_BYTES) for _ in matched_refs]
        with self._lock:
            self._channel_runs[ticket.run_id] = ChannelRun(ticket, matched_refs, row_keys)
        digest, used = candidates.consents_digest()
        return alignment_pb2.PairReport(
            run_id=ticket.run_id,
            channel=self.channel,
            candidates=len(candidates.refs),
            row_keys=b"".join(row_keys),
            consents_digest=digest,
            consents_used=used,
        )

    # -- both -------------------------------------------------------------------------------
    def block_rows(self, runs: dict[str, list[bytes]]) -> int:
        """Stop using the customers behind these row keys (they revoked at another node)."""
        refs: set[str] = set()
        with Session(self.engine) as session:
            for run_id, keys in runs.items():
                for key in keys:
                    row = session.get(AlignmentRow, (run_id, key))
                    if row is not None:
                        refs.add(row.local_ref)
            now = int(self._clock())
            for ref in refs:
                if session.get(NetworkBlock, ref) is None:
                    session.add(NetworkBlock(local_ref=ref, at=now))
            session.commit()
        self.gate.block(refs)
        return len(refs)

    def row_keys_of(self, local_refs: Sequence[str]) -> list[bytes]:
        """This node's row keys, in every run, of these customers."""
        with Session(self.engine) as session:
            rows = session.exec(
                select(AlignmentRow).where(col(AlignmentRow.local_ref).in_(list(local_refs)))
            ).all()
            return [bytes(r.row_key) for r in rows]

    def row_key_of(self, run_id: str, local_ref: str) -> bytes:
        with self.engine.connect() as conn:
            row_key = conn.execute(_ROW_KEY_OF, {"r": run_id, "l": local_ref}).scalar()
        if row_key is None:
            raise NotFound(f"that customer is not aligned in run {run_id!r} at {self.channel!r}")
        return bytes(row_key)

    def issue_token(self, local_ref: str, ttl_s: int) -> str:
        """A short-lived token for a customer in a live session at this channel."""
        if not 1 <= ttl_s <= 3600:
            raise InvalidInput("ttl_seconds must be between 1 and 3600")
        token = secrets.token_urlsafe(18)
        with self._lock:
            now = int(self._clock())
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (local_ref, now + ttl_s)
        return f"{self.channel}:{token}"

    def resolve_token(self, token: str) -> str:
        with self._lock:
            found = self._tokens.get(token)
        if found is None or found[1] < int(self._clock()):
            raise NotFound("the touchpoint token is unknown or expired")
        return found[0]

    def local_ref(self, run_id: str, row_key: bytes) -> str:
        with self.engine.connect() as conn:
            ref = conn.execute(_LOCAL_REF, {"r": run_id, "k": row_key}).scalar()
        if ref is None:
            raise NotFound(f"no customer with that row key in run {run_id!r} at {self.channel!r}")
        return str(ref)

    def finish(self, run_id: str, commit: bool) -> int:
        with self._lock:
            label_run = self._label_runs.pop(run_id, None)
            channel_run = self._channel_runs.pop(run_id, None)
            if label_run is not None or channel_run is not None:
                self._finished.add(run_id)
        if not commit:
            return 0
        rows: list[tuple[bytes, str]] = []
        if label_run is not None:
            kept = sorted({label_run.order[p] for ps in label_run.matches.values() for p in ps})
            rows = [(label_run.row_keys[c], label_run.candidates.refs[c]) for c in kept]
        if channel_run is not None:
            rows = list(zip(channel_run.row_keys, channel_run.matched_refs, strict=True))
        if label_run is None and channel_run is None:
            raise NotFound(f"run {run_id!r} is unknown at {self.channel!r}")
        if rows:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(AlignmentRow),
                    [{"run_id": run_id, "row_key": k, "local_ref": r} for k, r in rows],
                )
        return len(rows)


def offset_label(offset: int) -> str:
    return f"offset {offset}"


def _match(mine: list[bytes], theirs: list[bytes]) -> list[int]:
    """Positions in the label node's list of my values that it also holds, in my order."""
    check_blinded(mine)
    positions = {value: p for p, value in enumerate(theirs)}
    return [positions[v] for v in mine if v in positions]
