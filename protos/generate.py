"""Generates the Python modules of `protos/*.proto` (messages, gRPC stubs, type stubs).

Run it as its own process: `python protos/generate.py [--out DIR]` (default: the repository
root, which writes `protos/*_pb2*.py*` beside the .proto files). grpc_tools.protoc crashes inside
a process that has imported TensorFlow, so nothing here imports it and tests call this script
through a subprocess.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted(p.relative_to(ROOT) for p in (ROOT / "protos").glob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Writes the generated modules under `out/protos/` and returns their paths."""
    (out / "protos").mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"--proto_path={ROOT}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(p) for p in PROTOS),
    ]
    subprocess.run(command, check=True, cwd=ROOT)
    return sorted((out / "protos").glob("*_pb2*.py*"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="directory to write protos/ into")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
