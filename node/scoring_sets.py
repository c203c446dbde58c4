"""One set of sources per (model, customer): what keeps scoring sums apart.

A scoring answer is a masked sum of the participants' embeddings. Sums over different sets of
nodes for one customer's row under one model difference into one node's embedding
(S{A,B} + S{A,C} - S{B,C} = 2·e_A; a full answer minus one without C is e_C), and the
marketer or the coordinator picks the set by leaving presentations out. So each node records
the set it first contributed to and contributes to no other: the same set again gives the same
sum (nothing new), and a request naming another set gets "cannot score now" until the next
model (P8 then degrades to a refusal instead of a second subset). A node that answered alone
with its own estimate holds the set of itself, so it never then joins a sum, and vice versa.
The record is written before anything is released, atomically, so two concurrent requests
with different sets cannot both pass.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from sqlalchemy import Engine, text

from accord.clock import Clock, system_clock
from accord.errors import NotReady

_CLAIM = text(
    "INSERT INTO scoring_set (model_id, local_ref, participants, created_at) "
    "VALUES (:m, :r, :p, :t) ON CONFLICT (model_id, local_ref) DO NOTHING"
)
_HELD = text("SELECT participants FROM scoring_set WHERE model_id = :m AND local_ref = :r")
_CACHE_MAX = 100_000


def set_name(participants: Iterable[str]) -> str:
    return ",".join(sorted(set(participants)))


class ScoringSets:
    def __init__(self, engine: Engine, clock: Clock = system_clock) -> None:
        self.engine = engine
        self._clock = clock
        self._lock = threading.Lock()
        # records never change once written, so a hit needs no database read
        self._known: dict[tuple[str, str], str] = {}

    def hold(self, model_id: str, local_ref: str, participants: Iterable[str]) -> None:
        """Claim ``participants`` as this customer's set under ``model_id``, or check that it
        is the set already claimed. Raises :class:`NotReady` (and records nothing) when
        another set holds."""
        wanted = set_name(participants)
        key = (model_id, local_ref)
        with self._lock:
            held = self._known.get(key)
        if held is None:
            with self.engine.begin() as conn:
                conn.execute(
                    _CLAIM,
                    {"m": model_id, "r": local_ref, "p": wanted, "t": int(self._clock())},
                )
                held = str(conn.execute(_HELD, {"m": model_id, "r": local_ref}).scalar_one())
            with self._lock:
                if len(self._known) >= _CACHE_MAX:
                    self._known.clear()
                self._known[key] = held
        if held != wanted:
            raise NotReady(
                f"cannot score now: under model {model_id}, {_describe(held)} alone score this "
                f"customer, and a sum over {_describe(wanted)} could be differenced with theirs "
                "into one source's embedding; the next model can score them again"
            )

    def forget(self, local_refs: Iterable[str]) -> None:
        """Drop a customer's records (erasure): nothing is left tying them to a set."""
        refs = list(local_refs)
        with self.engine.begin() as conn:
            for ref in refs:
                conn.execute(text("DELETE FROM scoring_set WHERE local_ref = :r"), {"r": ref})
        with self._lock:
            self._known = {k: v for k, v in self._known.items() if k[1] not in set(refs)}


def _describe(name: str) -> str:
    parts = name.split(",")
    return f"{parts[0]} (its own estimate)" if len(parts) == 1 else "{" + name + "}"
