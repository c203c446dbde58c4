"""A channel's own spend estimate, for the customers no other channel holds.

The federated LTV model answers only with masked sums over at least two channels (P2). For
customers only this channel holds, it can still answer out of its own purchases with a model
that needs no label and sends no vector: BG/NBD + Gamma-Gamma fitted on its own consented
customers (:mod:`accord.scoring.ltv.fallback`). Two calls, both made by the coordinator:

- after the network trains an LTV model, :meth:`OwnSpend.group_sum` fits the channel's model
  on its customers whose consent covers model training (through the gate, one data-use event
  each), keeps the parameters for that model, and releases one number: the sum of its estimates
  over the named training customers (at least ``MIN_SCALE_CUSTOMERS``). The coordinator divides
  their summed labels by it. One sum per alignment run (asked again, the same answer), and no
  two groups closer than the minimum, so no two sums can be differenced into a customer's
  estimate;
- when a score request reaches this channel alone, :meth:`OwnSpend.estimate` applies the kept
  parameters to the single person the gate released for the request's purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine, bindparam, text
from sqlmodel import Session, select

from accord.clock import Clock, system_clock
from accord.errors import Conflict, InvalidInput, NotFound, NotPermitted, NotReady
from accord.node.gate import ConsentedRows, ConsentGate
from accord.node.models import OwnSpendRow, SpendSumRelease
from accord.rowkeys import ROW_KEY_BYTES

if TYPE_CHECKING:  # pandas and the fitters load with the first fit, not at start-up
    import pandas as pd

    from accord.scoring.ltv.fallback import OwnSpendModel

FIT_PURPOSE = "model-training"
MAX_GROUP = 1_000_000
MAX_HORIZON_DAYS = 3650

_REFS_OF = text(
    "SELECT row_key, local_ref FROM alignment_row WHERE run_id = :r AND row_key IN :keys"
).bindparams(bindparam("keys", expanding=True))


@dataclass(frozen=True)
class SpendSum:
    """What a channel releases for one LTV model: one sum over a group of its customers."""

    total: float
    customers: int
    left_out: list[bytes]  # named row keys outside the sum: no consent for training now
    fitted_on: int


def _group_minimum() -> int:
    from accord.scoring.ltv.fallback import MIN_SCALE_CUSTOMERS

    return MIN_SCALE_CUSTOMERS


class OwnSpend:
    def __init__(
        self, engine: Engine, channel: str, gate: ConsentGate, clock: Clock = system_clock
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.gate = gate
        self._clock = clock
        self._fitting = threading.Lock()  # one fit at a time: a second sum must see the first
        self._lock = threading.Lock()  # the kept parameters (scoring never waits for a fit)
        self._kept: dict[str, tuple[OwnSpendModel, int]] = {}

    def _check(self, model_id: str, alignment_run: str, row_keys: Sequence[bytes]) -> None:
        if not 1 <= len(model_id) <= 64 or not 1 <= len(alignment_run) <= 64:
            raise InvalidInput("model and alignment_run must be 1-64 characters")
        least = _group_minimum()
        if len(row_keys) < least:
            raise InvalidInput(
                f"a group sum covers at least {least} customers; {len(row_keys)} were named"
            )
        if len(row_keys) > MAX_GROUP:
            raise InvalidInput(f"at most {MAX_GROUP} row keys per group sum")
        if any(len(k) != ROW_KEY_BYTES for k in row_keys):
            raise InvalidInput(f"every row key is {ROW_KEY_BYTES} bytes")
        if len(set(row_keys)) != len(row_keys):
            raise InvalidInput("each customer may be named once")

    def group_sum(
        self, model_id: str, alignment_run: str, row_keys: Sequence[bytes], horizon_days: int
    ) -> SpendSum:
        """Fit this channel's own model for ``model_id`` and sum its estimates over
        ``row_keys`` (this node's keys of ``alignment_run``). Refused, with nothing kept or
        logged beyond the fit's data uses, when fewer than the minimum can be summed.

        One sum per alignment run, whatever model id the caller names (the id is the caller's
        to choose, so a rule keyed on it held nothing): the same question again (same run, same
        customers, same horizon) gets the same answer, kept for the new model too; other
        customers in the same run are refused, and so is a group in a later run that differs
        from one already summed by fewer than the minimum."""
        from accord.scoring.ltv.fallback import fit_own_spend_model, own_summary

        self._check(model_id, alignment_run, row_keys)
        if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
            raise InvalidInput(f"horizon_days must be 1-{MAX_HORIZON_DAYS}")
        least = _group_minimum()
        with self._fitting:
            refs = self._local_refs(alignment_run, row_keys)
            named = _digests(refs.values())
            with Session(self.engine) as session:
                release = session.get(SpendSumRelease, alignment_run)
                kept = session.get(OwnSpendRow, model_id)
                if release is not None:
                    released = _split(release.summed)
                    left_out = [
                        k
                        for k in row_keys
                        if hashlib.sha256(refs[k].encode()).digest() not in released
                    ]
                    return self._again(session, release, named, model_id, horizon_days, left_out)
                if kept is not None:
                    raise Conflict(
                        f"{self.channel} already released a group sum for {model_id} "
                        f"(alignment run {kept.alignment_run!r})"
                    )
                earlier = [
                    (r.alignment_run, r.summed) for r in session.exec(select(SpendSumRelease))
                ]
            population = self.gate.open(FIT_PURPOSE, f"own-spend:{model_id}"[:64])
            features = _frame(population)
            usable = features.dropna()
            if usable.empty:
                raise NotReady(f"{self.channel} has no consented customer with a purchase")
            summary = own_summary(usable)
            model = fit_own_spend_model(summary)
            estimates = model.estimate(summary, horizon_days)
            wanted = [k for k in row_keys if refs[k] in estimates.index]
            if len(wanted) < least:
                raise NotReady(
                    f"only {len(wanted)} of the {len(row_keys)} named customers may be used for "
                    f"training at {self.channel} now; a group sum needs {least}"
                )
            summed = _digests(refs[k] for k in wanted)
            for run, other in earlier:
                apart = _distance(summed, other)
                if 0 < apart < least:
                    raise NotPermitted(
                        f"{self.channel} summed a group in alignment run {run!r} that differs "
                        f"from this one by {apart} customer(s); sums over groups closer than "
                        f"{least} would difference into the customers between them"
                    )
            total = float(estimates.loc[[refs[k] for k in wanted]].sum())
            chosen = set(wanted)
            left_out = [k for k in row_keys if k not in chosen]
            now = int(self._clock())
            with Session(self.engine) as session:
                session.add(
                    OwnSpendRow(
                        model_id=model_id,
                        alignment_run=alignment_run,
                        params=json.dumps(model.to_dict()),
                        horizon_days=horizon_days,
                        customers=len(usable),
                        summed_customers=len(wanted),
                        created_at=now,
                    )
                )
                session.add(
                    SpendSumRelease(
                        alignment_run=alignment_run,
                        model_id=model_id,
                        named=named,
                        summed=summed,
                        total=total,
                        customers=len(wanted),
                        fitted_on=len(usable),
                        created_at=now,
                    )
                )
                session.commit()
        return SpendSum(total, len(wanted), left_out, len(usable))

    def _again(
        self,
        session: Session,
        release: SpendSumRelease,
        named: bytes,
        model_id: str,
        horizon_days: int,
        left_out: list[bytes],
    ) -> SpendSum:
        """The run's one sum asked for again: the same answer for the same question (a retry,
        or a newer model over the same run), nothing for another."""
        first = session.get(OwnSpendRow, release.model_id)
        if first is None or not hmac.compare_digest(release.named, named):
            raise Conflict(
                f"{self.channel} already released its one group sum for alignment run "
                f"{release.alignment_run!r}, over other customers; it answers that question "
                "again but sums no other group of the run (two sums would difference into the "
                "customers between them)"
            )
        if first.horizon_days != horizon_days:
            raise Conflict(
                f"{self.channel}'s group sum for alignment run {release.alignment_run!r} was "
                f"over {first.horizon_days} days; ask for the same horizon"
            )
        kept = session.get(OwnSpendRow, model_id)
        if kept is None:
            session.add(
                OwnSpendRow(
                    model_id=model_id,
                    alignment_run=release.alignment_run,
                    params=first.params,
                    horizon_days=first.horizon_days,
                    customers=first.customers,
                    summed_customers=first.summed_customers,
                    created_at=int(self._clock()),
                )
            )
            session.commit()
        elif kept.alignment_run != release.alignment_run:
            raise Conflict(f"{self.channel} already released a group sum for {model_id}")
        return SpendSum(release.total, release.customers, left_out, release.fitted_on)

    def _local_refs(self, alignment_run: str, row_keys: Sequence[bytes]) -> dict[bytes, str]:
        found: dict[bytes, str] = {}
        keys = list(row_keys)
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 2000):
                chunk = keys[start : start + 2000]
                for key, ref in conn.execute(_REFS_OF, {"r": alignment_run, "keys": chunk}):
                    found[bytes(key)] = str(ref)
        unknown = len(keys) - len(found)
        if unknown:
            raise InvalidInput(
                f"{unknown} of the row keys are not {self.channel}'s in alignment run "
                f"{alignment_run!r}"
            )
        return found

    def _model(self, model_id: str) -> tuple[OwnSpendModel, int]:
        from accord.scoring.ltv.fallback import OwnSpendModel

        with self._lock:
            if model_id not in self._kept:
                with Session(self.engine) as session:
                    row = session.get(OwnSpendRow, model_id)
                if row is None:
                    raise NotFound(
                        f"{self.channel} has no own spend model for {model_id}: it answers alone "
                        "only for LTV models it released a group sum for"
                    )
                self._kept[model_id] = (
                    OwnSpendModel.from_dict(json.loads(row.params)),
                    row.horizon_days,
                )
            return self._kept[model_id]

    def has_model(self, model_id: str) -> bool:
        try:
            self._model(model_id)
        except NotFound:
            return False
        return True

    def estimate(self, model_id: str, rows: ConsentedRows) -> float:
        """This channel's own expected spend for the one customer the gate released."""
        from accord.scoring.ltv.fallback import own_summary

        model, horizon = self._model(model_id)
        if len(rows) != 1:
            raise InvalidInput("an own estimate is for exactly one customer")
        features = _frame(rows)
        if features.isna().any(axis=None):
            raise NotReady(f"{self.channel} has no purchase of this customer before its cut-off")
        value = float(model.estimate(own_summary(features), horizon).iloc[0])
        if not np.isfinite(value) or value < 0:
            raise NotReady(f"{self.channel}'s own model gave no usable estimate")
        return value


def _digests(refs: Iterable[str]) -> bytes:
    """A group as sorted 32-byte digests of local references (comparable, not readable)."""
    return b"".join(sorted(hashlib.sha256(r.encode()).digest() for r in refs))


def _split(group: bytes) -> set[bytes]:
    return {group[i : i + 32] for i in range(0, len(group), 32)}


def _distance(a: bytes, b: bytes) -> int:
    """How many customers are in one group and not the other."""
    return len(_split(a) ^ _split(b))


def _frame(rows: ConsentedRows) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(rows.features, index=list(rows.refs), columns=list(rows.columns))


__all__ = ["FIT_PURPOSE", "OwnSpend", "SpendSum"]
