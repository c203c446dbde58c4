"""An independent check of P3: was every data use covered by a valid consent at that moment?

The nodes' consent gate makes violations impossible by construction; this module does not
take that on trust. It replays the ledger in order, keeping each consent commitment's state
(who granted it, for which purposes, until when, whether and where it was revoked), and checks
every use of every ``data.use`` event against the state *at that ledger index*:

- a consent with that commitment was granted earlier in the log;
- the use cites that grant's ledger index;
- the grant was made by the node that used the data, for the same customer (subject);
- the grant covers the use's purpose;
- the consent had not expired at the use's time;
- it had not been revoked earlier in the log.

Uses written since issue 16 carry those references sealed to the auditor
(:class:`SealedDataUse`); the check opens them with the auditor's key (``opener``). A use that
is not sealed, or does not open with that key, is a violation: nobody can show its consent.

A scoring use may carry the customer's consent proof (:class:`UseProof`): it is verified
against the issuer key the using node published last before it (:class:`IssuerKey`), for
that node, that purpose, unexpired at the use's time and bound to the nonce it names; a proof
that does not verify is a violation. Refusals the nodes logged (:class:`UseRefused`) are
counted by reason.

Replay follows the rules the coordinator applies when it builds its status map: the first
grant of a commitment counts, and only the granting node can revoke it. Pure: entries in,
findings out; no I/O and no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from accord.auditing.entries import LedgerEvent, Opener
from accord.consent.credential import PresentationRefused, verify_use_proof
from accord.consent.events import (
    ConsentGranted,
    ConsentRevoked,
    DataUse,
    IssuerKey,
    Record,
    SealedDataUse,
    Use,
    UseRefused,
)
from accord.crypto.errors import CryptoError
from accord.errors import InvalidInput


@dataclass
class ConsentState:
    node: str
    subject: bytes
    purposes: tuple[str, ...]
    expires: int
    granted_index: int
    granted_at: int
    revoked_index: int | None = None
    revoked_at: int | None = None


@dataclass(frozen=True)
class Violation:
    """One use of one customer's data that no valid consent covered."""

    index: int  # the ledger index of the data.use entry
    use: int  # the position of the use within that entry
    node: str
    purpose: str
    at: int
    problem: str


@dataclass(frozen=True)
class ViolationReport:
    entries: int
    uses_checked: int
    use_events: int
    consents_granted: int
    consents_revoked: int
    violations: tuple[Violation, ...]
    unreadable: tuple[tuple[int, str], ...] = ()
    events_by_type: dict[str, int] = field(default_factory=dict)
    # the customers' consent proofs: verified, failed (also listed as violations), and the uses
    # that carry none; the refusals nodes logged, by reason
    proofs_verified: int = 0
    proofs_failed: int = 0
    uses_without_proof: int = 0
    refusals: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.violations

    def violating_entries(self) -> list[int]:
        return sorted({v.index for v in self.violations})


def _problems(
    state: ConsentState | None,
    index: int,
    event: DataUse | SealedDataUse,
    subject: bytes,
    cited: int,
) -> list[str]:
    """Every reason the consent did not cover this use (empty: it did)."""
    if state is None:
        return ["no consent with this commitment was granted earlier in the ledger"]
    found = []
    if cited != state.granted_index:
        found.append(
            f"cites a grant at entry {cited}, but this consent was granted at entry "
            f"{state.granted_index}"
        )
    if state.node != event.node:
        found.append(f"the consent was granted at node {state.node!r}, not at the node using it")
    if subject != state.subject:
        found.append("the consent was granted for a different customer than the one used")
    if event.purpose not in state.purposes:
        found.append(f"the consent covers {', '.join(state.purposes)}, not {event.purpose}")
    if event.at >= state.expires:
        found.append(f"the consent expired at {state.expires}, before the use at {event.at}")
    if state.revoked_index is not None and state.revoked_index < index:
        found.append(f"the consent was revoked at entry {state.revoked_index}")
    return found


def _opened(event: SealedDataUse, opener: Opener | None) -> tuple[Use, ...] | str:
    """The uses of a sealed entry, or why the auditor cannot read them."""
    if not event.audit:
        return "the use was not sealed to the auditor: nobody can check which consent covers it"
    if opener is None:
        return "the use is sealed to the auditor: check it with the auditor's key"
    try:
        return opener(event)[1]
    except (CryptoError, InvalidInput):
        return "the use does not open with the auditor's key (sealed to another key, or altered)"


def _proof_problem(event: SealedDataUse, keys: dict[str, bytes]) -> str | None:
    """Why the entry's consent proof does not authorise its use (None: it does)."""
    key = keys.get(event.node)
    if key is None:
        return (
            f"the consent proof cannot be checked: {event.node!r} published no issuer key before it"
        )
    try:
        verify_use_proof(key, event)
    except PresentationRefused as refused:
        return f"the consent proof is refused ({refused.reason}): {refused}"
    except InvalidInput as exc:
        return f"the consent proof is malformed: {exc}"
    return None


def find_violations(events: Iterable[LedgerEvent], opener: Opener | None = None) -> ViolationReport:
    """Replay ``events`` (in ledger order) and check every use against the consent state;
    ``opener`` reads sealed uses with the auditor's key."""
    consents: dict[bytes, ConsentState] = {}
    violations: list[Violation] = []
    unreadable: list[tuple[int, str]] = []
    types: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    issuer_keys: dict[str, bytes] = {}
    entries = uses = use_events = granted = revoked = 0
    proofs_verified = proofs_failed = without_proof = 0
    for item in events:
        entries += 1
        event = item.event
        if event is None:
            unreadable.append((item.index, item.problem or "not an Accord event"))
            continue
        types[event.TYPE if not isinstance(event, Record) else f"record:{event.kind}"] += 1
        if isinstance(event, ConsentGranted):
            if event.consent not in consents:  # the first grant counts, as in the status map
                granted += 1
                consents[event.consent] = ConsentState(
                    event.node,
                    event.subject,
                    event.purposes,
                    event.expires,
                    item.index,
                    event.at,
                )
        elif isinstance(event, ConsentRevoked):
            state = consents.get(event.consent)
            if state is not None and state.node == event.node and state.revoked_index is None:
                revoked += 1
                state.revoked_index, state.revoked_at = item.index, event.at
        elif isinstance(event, IssuerKey):
            issuer_keys[event.node] = event.key  # the latest one counts from here on
        elif isinstance(event, UseRefused):
            refusals[event.reason] += 1
        elif isinstance(event, SealedDataUse):
            use_events += 1
            proof_problem = None
            if event.proof is None:
                without_proof += len(event.uses)
            else:
                proof_problem = _proof_problem(event, issuer_keys)
                if proof_problem is None:
                    proofs_verified += 1
                else:
                    proofs_failed += 1
            opened = _opened(event, opener)
            for position in range(len(event.uses)):
                uses += 1
                if isinstance(opened, str):
                    problems = [opened]
                else:
                    use = opened[position]
                    problems = _problems(
                        consents.get(use.consent),
                        item.index,
                        event,
                        use.subject,
                        use.consent_index,
                    )
                if proof_problem is not None:
                    problems.append(proof_problem)
                if problems:
                    violations.append(
                        Violation(
                            item.index,
                            position,
                            event.node,
                            event.purpose,
                            event.at,
                            "; ".join(problems),
                        )
                    )
        elif isinstance(event, DataUse):
            use_events += 1
            without_proof += len(event.uses)  # written before proofs existed
            for position, use in enumerate(event.uses):
                uses += 1
                problems = _problems(
                    consents.get(use.consent), item.index, event, use.subject, use.consent_index
                )
                if problems:
                    violations.append(
                        Violation(
                            item.index,
                            position,
                            event.node,
                            event.purpose,
                            event.at,
                            "; ".join(problems),
                        )
                    )
    return ViolationReport(
        entries=entries,
        uses_checked=uses,
        use_events=use_events,
        consents_granted=granted,
        consents_revoked=revoked,
        violations=tuple(violations),
        unreadable=tuple(unreadable),
        events_by_type=dict(types),
        proofs_verified=proofs_verified,
        proofs_failed=proofs_failed,
        uses_without_proof=without_proof,
        refusals=dict(refusals),
    )


def proofs_summary(report: ViolationReport) -> str:
    """One line: the customers' consent proofs verified and failed, and the logged refusals."""
    refused = sum(report.refusals.values())
    by_reason = ", ".join(f"{r} {n}" for r, n in sorted(report.refusals.items()))
    return (
        f"consent proofs: {report.proofs_verified} verified, {report.proofs_failed} failed, "
        f"{report.uses_without_proof} uses without a proof; {refused} uses refused"
        + (f" ({by_reason})" if by_reason else "")
    )
