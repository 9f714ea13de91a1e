"""The committed generated modules are exactly what protos/generate.py writes today."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protos_are_up_to_date(tmp_path: Path) -> None:
    # A separate process: protoc crashes inside a process that imported TensorFlow.
    subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    fresh = {p.name: p.read_bytes() for p in (tmp_path / "protos").iterdir()}
    committed = {p.name: p.read_bytes() for p in (ROOT / "protos").glob("*_pb2*.py*")}
    assert fresh.keys() == committed.keys()
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"regenerate with `python protos/generate.py`: {stale} are stale"
