"""benchmarks/step_profile.py in a tiny mode: one JSON line with the step's CPU per kernel kind
and phase, and its matrix-multiply floor from a one-thread child process."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_prints_the_profile_and_its_floor(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "step_profile.py")]
    command += ["--rows", "3072", "--steps", "3", "--precisions", "float32"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout[-2000:]
    result = json.loads(lines[0])
    assert result["benchmark"] == "step_profile" and set(result) >= {"float32"}
    figures = result["float32"]
    ops = figures["ops_cpu_ms"]
    assert set(ops) == {"forward", "backward", "optimizer"}
    # the attention's batched matmuls forward, their gradients, the sparse table update
    assert ops["forward"]["BatchMatMulV2"] > 0 and ops["backward"]["MatMul"] > 0
    assert "ResourceScatterAdd" in ops["optimizer"]
    assert not any("Process" in kind or "_Mkl" in kind for kinds in ops.values() for kind in kinds)
    assert 0 < figures["matmuls_cpu_ms"] < sum(sum(k.values()) for k in ops.values())
    assert figures["step_cpu_ms"] > 0 and figures["gemm_floor_cpu_ms"] > 0
    assert figures["gemm_share"] == round(figures["gemm_floor_cpu_ms"] / figures["step_cpu_ms"], 2)
