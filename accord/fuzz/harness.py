"""What one fuzz target is, how one input is judged, and a small mutator for short runs.

An input is *refused* when the code under test raises an :class:`~accord.errors.AccordError`
(the project's one refusal hierarchy, which the transport maps to a gRPC status and the CLI to
one readable line); *accepted* when it returns; a *crash* when anything else escapes
(``IndexError``, ``UnicodeDecodeError``, ``RecursionError``, ...). For a target that touches a
store, a refused input must leave the store as it was: the target's ``state`` token is taken
after every input and compared with the one before each refused input.

:func:`run_mutations` is the fuzzer of the short run inside ``make test``: seeds, then random
mutations of them. ``make fuzz`` drives the same targets with a coverage-guided fuzzer
(:mod:`accord.fuzz.atheris_run`); both count through :class:`Tally`.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accord.errors import AccordError

MAX_CRASH_SAMPLES = 5
_CHECKOUT = str(Path(__file__).resolve().parents[2])  # crash sites are named in our code


@dataclass
class Harness:
    """One target, built: ``call`` takes the fuzzer's bytes; ``state`` (if the target touches a
    store) returns a token that changes whenever something is stored."""

    call: Callable[[bytes], object]
    seeds: Sequence[bytes]
    state: Callable[[], object] | None = None
    close: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Target:
    name: str
    what: str
    build: Callable[[Path], Harness]
    max_len: int = 4096
    """The longest input the coverage-guided fuzzer makes for this target."""


@dataclass
class CrashSample:
    kind: str
    where: str
    input_hex: str


@dataclass
class Tally:
    """Counts for one target; :meth:`feed` runs and judges one input."""

    target: str
    stateful: bool
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    crashes: int = 0
    state_changes: int = 0
    slowest_ms: float = 0.0
    seconds: float = 0.0
    samples: list[CrashSample] = field(default_factory=list)
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _state: object = None

    def prime(self, harness: Harness) -> None:
        if harness.state is not None:
            self._state = harness.state()

    def feed(self, harness: Harness, data: bytes) -> None:
        self.inputs += 1
        started = time.perf_counter()
        refused = False
        try:
            harness.call(data)
            self.accepted += 1
        except AccordError:
            self.refused += 1
            refused = True
        except Exception as exc:
            self.crashes += 1
            self._sample(exc, data)
        self.slowest_ms = max(self.slowest_ms, (time.perf_counter() - started) * 1000)
        if harness.state is not None:
            after = harness.state()
            if refused and after != self._state:
                self.state_changes += 1
                self._sample_state(data)
            self._state = after

    def _sample(self, exc: Exception, data: bytes) -> None:
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [
            f for f in frames if f.filename.startswith(_CHECKOUT) and "-packages" not in f.filename
        ]
        last = (ours or frames)[-1] if frames else None
        where = f"{'/'.join(last.filename.rsplit('/', 2)[-2:])}:{last.lineno}" if last else "?"
        key = (type(exc).__name__, where)
        if key in self._seen or len(self.samples) >= MAX_CRASH_SAMPLES:
            return
        self._seen.add(key)
        self.samples.append(CrashSample(f"{type(exc).__name__}: {exc}"[:200], where, data.hex()))

    def _sample_state(self, data: bytes) -> None:
        if len(self.samples) < MAX_CRASH_SAMPLES:
            self.samples.append(CrashSample("state changed on refusal", "-", data.hex()))

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "stateful": self.stateful,
            "inputs": self.inputs,
            "accepted": self.accepted,
            "refused": self.refused,
            "crashes": self.crashes,
            "state_changes": self.state_changes if self.stateful else None,
            "slowest_ms": round(self.slowest_ms, 1),
            "seconds": round(self.seconds, 1),
            "samples": [s.__dict__ for s in self.samples],
        }


def mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes], max_len: int) -> bytes:
    """One to four random edits: bit flips, byte sets, inserts, deletes, copies, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.choice(b'\x00\x01\x7f\x80\xff\n {}[]",:-0')
        elif op == 2:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and buf:
            end = min(len(buf), pos + rng.randint(1, 16))
            del buf[pos:end]
        elif op == 4 and buf:
            start = rng.randrange(len(buf))
            chunk = buf[start : start + rng.randint(1, 32)]
            buf[pos:pos] = chunk
        elif op == 5 and seeds:
            other = rng.choice(seeds)
            cut = rng.randint(0, len(other))
            buf = buf[:pos] + bytearray(other[cut:])
        elif op == 6 and buf:
            del buf[pos:]
    return bytes(buf[:max_len])


def run_mutations(
    target: Target, workdir: Path, *, inputs: int, seconds: float, seed: int = 0
) -> Tally:
    """Fuzz ``target`` without coverage feedback: its seeds, then mutations of them."""
    harness = target.build(workdir)
    tally = Tally(target.name, harness.state is not None)
    rng = random.Random(seed)  # noqa: S311 - reproducible mutations, not secrets
    started = time.monotonic()
    try:
        tally.prime(harness)
        pool = list(harness.seeds) or [b""]
        for data in pool:
            tally.feed(harness, data)
        while tally.inputs < inputs and time.monotonic() - started < seconds:
            tally.feed(harness, mutate(rng, rng.choice(pool), pool, target.max_len))
    finally:
        tally.seconds = time.monotonic() - started
        harness.close()
    return tally


def format_table(tallies: Sequence[Tally | dict[str, object]]) -> str:
    """The per-target table ``make fuzz`` prints."""
    rows = [t.to_json() if isinstance(t, Tally) else t for t in tallies]
    head: tuple[str, ...] = ("target", "inputs", "accepted", "refused", "crashes")
    head = (*head, "state changes", "slowest ms", "s")
    lines: list[tuple[str, ...]] = [head]
    for r in rows:
        changes = r["state_changes"]
        lines.append(
            (
                str(r["target"]),
                str(r["inputs"]),
                str(r["accepted"]),
                str(r["refused"]),
                str(r["crashes"]),
                "n/a" if changes is None else str(changes),
                str(r["slowest_ms"]),
                str(r["seconds"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        numbers = zip(line[1:], widths[1:], strict=True)
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in numbers]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
