"""Regenerate the committed Python stubs in proto/v1 from proto/accord/v1/*.proto.

Usage: python scripts/gen_proto.py [--check]

protoc names generated modules after the .proto path (``accord.v1.x_pb2``); the distribution
installs them as ``accord.proto.v1.x_pb2``, so import lines are rewritten. The descriptor
itself keeps the canonical file names (``accord/v1/x.proto``), which is what reflection shows.
With ``--check`` nothing is written and the exit code says whether the stubs are stale.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_IMPORT_PY = re.compile(r"^(from|import) accord\.v1\b", re.MULTILINE)
_ANY_PYI = re.compile(r"\baccord\.v1\.")


def generate(proto_root: Path, dest: Path) -> None:
    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    bin_dir = Path(sys.executable).parent
    sources = proto_root / "accord" / "v1"
    protos = sorted(str(p.relative_to(proto_root)) for p in sources.glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{proto_root}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
            f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed; see the messages above")
        generated = Path(tmp) / "accord" / "v1"
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(generated.iterdir()):
            text = path.read_text()
            if path.suffix == ".py":
                text = _IMPORT_PY.sub(lambda m: f"{m.group(1)} accord.proto.v1", text)
            else:
                text = _ANY_PYI.sub("accord.proto.v1.", text)
            (dest / path.name).write_text(text)
    (dest / "__init__.py").write_text(
        '"""Generated gRPC/protobuf stubs for package accord.v1."""\n'
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    parser.add_argument("--proto-root", type=Path, default=ROOT / "proto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    proto_root: Path = args.proto_root
    out = proto_root / "v1"
    if not args.check:
        if out.exists():
            shutil.rmtree(out)
        generate(proto_root, out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "v1"
        generate(proto_root, fresh)
        names = {p.name for p in fresh.iterdir()} | {p.name for p in out.glob("*") if p.is_file()}
        stale = sorted(
            n
            for n in names
            if not (fresh / n).exists()
            or not (out / n).exists()
            or not filecmp.cmp(fresh / n, out / n, shallow=False)
        )
    if stale:
        print(f"stale generated stubs in proto/v1: {', '.join(stale)}; run `make proto`")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
