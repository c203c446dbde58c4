"""The coordinator's view of consent, derived from the ledger: the status map and its history.

Every ``consent.granted`` and ``consent.revoked`` entry updates a sparse Merkle map from consent
commitment to status; its root is bound into each checkpoint as an extension line, so "consent
C was valid and not revoked as of checkpoint N" is one proof against one signed note. The index
is rebuilt from the ledger at start: the ledger is the only source of truth.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256

from accord.consent.events import (
    ConsentGranted,
    ConsentRevoked,
    ConsentStatus,
    Event,
    Record,
    decode,
)
from accord.crypto.statusmap import StatusMap, StatusProof
from accord.errors import AccordError, Conflict, InvalidInput, NotFound, NotPermitted
from accord.rpc.roles import COORDINATOR

STATUS_EXTENSION = "accord-status"
SNAPSHOTS_KEPT = 256


def status_extension(root: bytes) -> str:
    return f"{STATUS_EXTENSION} {base64.b64encode(root).decode()}"


def value_hash(status: ConsentStatus) -> bytes:
    return sha256(status.encode()).digest()


def check_author(event: Event, appended_by: str) -> None:
    """A party writes events only in its own name, and only the kinds its place allows: the
    network's records (alignment runs, training runs, model and policy versions) are the
    coordinator's alone; consents and data uses belong to the node that holds the data."""
    if event.node != appended_by:
        raise NotPermitted(
            f"an event names node {event.node!r} but was sent by {appended_by!r}: write events "
            "only in your own name"
        )
    if isinstance(event, Record) and appended_by != COORDINATOR:
        raise NotPermitted(
            f"{event.kind} records are the coordinator's to write; {appended_by!r} may append "
            "consents and data uses only"
        )
    if not isinstance(event, Record) and appended_by == COORDINATOR:
        raise NotPermitted(
            "consents and data uses are written by the node that holds the data, "
            "not by the coordinator"
        )


@dataclass
class Draft:
    """Changes staged for one group commit; a refused request rolls back to its savepoint."""

    map: StatusMap
    changes: list[tuple[bytes, int, ConsentStatus]] = field(default_factory=list)
    pending: dict[bytes, ConsentStatus] = field(default_factory=dict)


class ConsentIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._map = StatusMap()
        # every version of every consent's status, with the ledger index that set it
        self._history: dict[bytes, list[tuple[int, ConsentStatus]]] = {}
        self._snapshots: OrderedDict[int, StatusMap] = OrderedDict()
        self._snapshots[0] = self._map.snapshot()

    # -- staging (sequencer thread) -------------------------------------------------------
    def draft(self) -> Draft:
        return Draft(self._map.snapshot())

    def current(self, key: bytes, draft: Draft) -> ConsentStatus | None:
        if key in draft.pending:
            return draft.pending[key]
        versions = self._history.get(key)
        return versions[-1][1] if versions else None

    def stage(
        self, draft: Draft, first_index: int, entries: Sequence[bytes], appended_by: str
    ) -> None:
        """Apply one request's entries to ``draft``, or raise and leave ``draft`` as it was."""
        savepoint = (draft.map.snapshot(), len(draft.changes), dict(draft.pending))
        try:
            for offset, data in enumerate(entries):
                self._apply(draft, first_index + offset, decode(data), appended_by)
        except BaseException:
            draft.map, draft.pending = savepoint[0], savepoint[2]
            del draft.changes[savepoint[1] :]
            raise

    def _apply(self, draft: Draft, index: int, event: Event, appended_by: str) -> None:
        check_author(event, appended_by)
        if isinstance(event, ConsentGranted):
            if self.current(event.consent, draft) is not None:
                raise Conflict("this consent commitment is already on the ledger")
            status = ConsentStatus("granted", event.node, event.purposes, event.expires, index)
        elif isinstance(event, ConsentRevoked):
            before = self.current(event.consent, draft)
            if before is None:
                raise NotFound("the revoked consent is not on the ledger")
            if before.node != event.node:
                raise NotPermitted("a node revokes only consents it recorded")
            if before.status == "revoked":
                return  # revoking twice changes nothing
            status = ConsentStatus(
                "revoked", before.node, before.purposes, before.expires, before.granted_index, index
            )
        else:
            return
        draft.map.set(event.consent, value_hash(status))
        draft.pending[event.consent] = status
        draft.changes.append((event.consent, index, status))

    def commit(self, draft: Draft, size: int) -> StatusMap:
        """Make a committed draft current; return the status map at ``size`` (a snapshot)."""
        with self._lock:
            for key, index, status in draft.changes:
                self._history.setdefault(key, []).append((index, status))
            self._map = draft.map
            snapshot = draft.map.snapshot()
            self._snapshots[size] = snapshot
            while len(self._snapshots) > SNAPSHOTS_KEPT:
                self._snapshots.popitem(last=False)
            return snapshot

    # -- reading (any thread) -------------------------------------------------------------
    def root(self) -> bytes:
        with self._lock:
            return self._map.root

    def map(self) -> StatusMap:
        """The current status map, as a snapshot."""
        with self._lock:
            return self._map.snapshot()

    def prove(
        self, key: bytes, size: int, snapshot: StatusMap | None = None
    ) -> tuple[ConsentStatus | None, StatusProof]:
        """The status of ``key`` as of tree ``size`` (a published checkpoint) and its proof,
        against ``snapshot`` (the map at ``size``) or one of the recent commits' maps."""
        with self._lock:
            if snapshot is None:
                snapshot = self._snapshots.get(size)
            if snapshot is None:
                raise InvalidInput(
                    f"no status-map snapshot for tree size {size}; ask against a recent checkpoint"
                )
            status = None
            for index, version in self._history.get(key, []):
                if index < size:
                    status = version
            return status, snapshot.prove(key)

    def replay(self, entries: Iterable[tuple[int, bytes, str]]) -> None:
        """Rebuild from the ledger at start (entries in index order)."""
        draft = self.draft()
        size = 0
        for index, data, appended_by in entries:
            # an entry refused at append time never reached the map; skip it the same way
            with contextlib.suppress(AccordError):
                self._apply(draft, index, decode(data), appended_by)
            size = index + 1
        self.commit(draft, size)
