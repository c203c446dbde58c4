"""``python -m accord.fuzz``: every target under the fuzzer, ``--jobs`` at a time; a table.

Each target runs in a process of its own (:mod:`accord.fuzz.atheris_run`) until it has fed
``--inputs`` inputs or spent ``--seconds``; libFuzzer's own log goes to ``<out>/<target>.log``,
crashing inputs (hex) to the JSON beside it. Exits 1 when any target crashed, stored something
on a refused input, or ran short of ``--inputs``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from accord.fuzz.harness import format_table
from accord.fuzz.targets import TARGETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accord.fuzz", description=__doc__)
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seconds", type=float, default=600.0, help="time cap per target")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--engine", choices=("atheris", "mutate"), default="atheris")
    parser.add_argument("--out", type=Path, default=Path("build/fuzz"))
    parser.add_argument("targets", nargs="*", help="names (default: all)")
    args = parser.parse_args(argv)
    names = args.targets or [t.name for t in TARGETS]
    unknown = set(names) - {t.name for t in TARGETS}
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    # files and SQLite stores in memory when the machine has a tmpfs: the disk is not under test
    shm = Path("/dev/shm")  # noqa: S108 - a private mkdtemp folder inside it
    scratch = Path(tempfile.mkdtemp(prefix="accord-fuzz-", dir=shm if shm.is_dir() else None))
    try:
        return _run(args, names, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, names: list[str], scratch: Path) -> int:
    started = time.monotonic()
    pending = list(names)
    running: dict[str, tuple[subprocess.Popen[bytes], object]] = {}
    failed_to_run: list[str] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            result = args.out / f"{name}.json"
            result.unlink(missing_ok=True)
            log = (args.out / f"{name}.log").open("wb")
            cmd = [
                sys.executable,
                "-m",
                "accord.fuzz.atheris_run",
                name,
                f"--inputs={args.inputs}",
                f"--seconds={args.seconds}",
                f"--out={result}",
                f"--workdir={scratch / name}",
                f"--engine={args.engine}",
            ]
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
        time.sleep(0.2)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            log.close()  # type: ignore[attr-defined]
            if proc.returncode != 0 or not (args.out / f"{name}.json").exists():
                failed_to_run.append(name)
    rows = []
    for name in names:
        path = args.out / f"{name}.json"
        if path.exists():
            rows.append(json.loads(path.read_text()))
    print(format_table(rows))
    print(f"total wall time {time.monotonic() - started:.0f} s, {args.jobs} jobs")
    bad = False
    for row in rows:
        for sample in row["samples"]:
            sample_hex = sample["input_hex"][:160]
            print(f"{row['target']}: {sample['kind']} at {sample['where']}: {sample_hex}")
        short = row["inputs"] < args.inputs
        if row["crashes"] or row["state_changes"] or short:
            bad = True
            if short:
                print(f"{row['target']}: ran {row['inputs']} of {args.inputs} inputs (time cap)")
    for name in failed_to_run:
        print(f"{name}: the fuzzing process failed; see {args.out / (name + '.log')}")
        bad = True
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
