"""`ue preprocess` runs without importing TensorFlow (its start-up cost is seconds and ~0.5 GB):
the workers hash in NumPy and build records with protobuf's own classes."""

import json
import subprocess
import sys
from pathlib import Path

from tests.pipelines.tiny_schema import TINY_SCHEMA

SCRIPT = """
import json, sys
from pipelines.preprocess import main
status = main(sys.argv[1:])
print(json.dumps({"status": status, "tensorflow": "tensorflow" in sys.modules}))
"""


def test_a_preprocessing_job_imports_no_tensorflow(tmp_path: Path) -> None:
    lines = [f"{i % 2}\t{i}\tv{i % 7}\ta|b{i % 3}" for i in range(500)]
    (tmp_path / "rows.tsv").write_text("\n".join(lines) + "\n")
    (tmp_path / "schema.json").write_text(json.dumps(TINY_SCHEMA))
    args = ["--input", str(tmp_path / "rows.tsv"), "--schema", str(tmp_path / "schema.json")]
    args += ["--output", str(tmp_path / "out"), "--block-rows", "100"]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], capture_output=True, text=True, check=True
    )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"status": 0, "tensorflow": False}, done.stderr[-2000:]
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "out").glob("*.tfrecord.gz")) == [
        "eval",
        "train",
    ]
