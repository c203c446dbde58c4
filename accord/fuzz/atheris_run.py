"""One target under the coverage-guided fuzzer (atheris, libFuzzer), in a process of its own.

``python -m accord.fuzz.atheris_run TARGET --inputs N --seconds S --out result.json``

libFuzzer's loop never returns, so the callback itself stops the process once ``N`` inputs ran
or ``S`` seconds passed, after writing the tally as JSON. Every exception is caught and judged
by :class:`accord.fuzz.harness.Tally` (libFuzzer would stop at the first one); the project's
modules are instrumented for coverage as they are imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from accord.fuzz.harness import Harness, Tally, Target, run_mutations


def _write(out: Path, tally: Tally) -> None:
    out.write_text(json.dumps(tally.to_json(), indent=2))


def _atheris(target_name: str, workdir: Path, out: Path, inputs: int, seconds: float) -> None:
    import atheris  # a dev dependency: make fuzz only

    started = time.monotonic()
    with atheris.instrument_imports(include=["accord"], exclude=["accord.fuzz"]):
        from accord.fuzz.targets import by_name

        target: Target = by_name(target_name)
        harness: Harness = target.build(workdir)
    tally = Tally(target.name, harness.state is not None)
    tally.prime(harness)
    corpus = workdir / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(harness.seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    fuzz_started = time.monotonic()
    deadline = fuzz_started + seconds

    def one_input(data: bytes) -> None:
        tally.feed(harness, data)
        if tally.inputs >= inputs or time.monotonic() >= deadline:
            tally.seconds = time.monotonic() - fuzz_started
            _write(out, tally)
            print(f"{target.name}: {tally.inputs} inputs in {tally.seconds:.1f} s", file=sys.stderr)
            os._exit(0)  # libFuzzer's loop does not return

    del started
    atheris.Setup(
        [
            sys.argv[0],
            f"-max_len={target.max_len}",
            "-seed=1",
            "-rss_limit_mb=6144",
            "-print_final_stats=0",
            str(corpus),
        ],
        one_input,
    )
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--engine", choices=("atheris", "mutate"), default="atheris")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.engine == "atheris":
        _atheris(args.target, args.workdir, args.out, args.inputs, args.seconds)
        return
    from accord.fuzz.targets import by_name

    tally = run_mutations(
        by_name(args.target), args.workdir, inputs=args.inputs, seconds=args.seconds
    )
    _write(args.out, tally)


if __name__ == "__main__":
    main()
