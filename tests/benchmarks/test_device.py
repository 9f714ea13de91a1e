"""benchmarks/device.py in a tiny mode: it runs to the end here (CPU) and prints one JSON line
naming the device with every figure, mixed_float16's loss-scaled step included."""

import json
import os
import subprocess
import sys
from pathlib import Path

import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--rows", "1000", "--steps", "2", "--batch-size", "128", "--repeats", "1", "--calls", "20"]
MIXED = ["mixed_bfloat16", "mixed_float16"]  # float16 is the GPU's: its step runs on a CPU too


def test_tiny_run_prints_one_json_line_with_every_figure(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "device.py"), *TINY, "--mixed", ",".join(MIXED)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout[-2000:]
    result = json.loads(lines[0])
    assert result["benchmark"] == "device"
    assert result["tensorflow"] == tf.__version__
    assert result["device_type"] in ("CPU", "GPU") and result["device_name"]
    assert result["device"].endswith(f"{result['device_type']}:0")
    assert result["device_type"] in result["table_device"]
    assert result["mixed_precision"] == MIXED
    assert set(result["train"]) == {"float32", *MIXED}
    for figures in result["train"].values():
        assert figures["train_examples_per_second"] > 0
        assert figures["train_examples_per_cpu_second"] > 0
        assert figures["predict_rows_per_second"] > 0
        assert len(figures["train_examples_per_second_runs"]) == 1
    assert set(result["mixed_vs_float32"]) == set(MIXED)
    assert all(r["train"] > 0 and r["predict"] > 0 for r in result["mixed_vs_float32"].values())
    for path in ("exported_packed", "in_memory_tf_function"):
        latency = result["batch_1"][path]
        assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert result["batch_1"]["calls"] == 20
    # With a GPU, the same run measured the CPU as its baseline.
    assert ("gpu_vs_cpu" in result) == (result["device_type"] == "GPU")
    assert not list(tmp_path.iterdir())  # the export went to a temporary folder
