"""Where the training step's CPU goes, next to its matrix-multiply floor measured in the same run.

For each precision (`--precisions`), builds AutoInt over the 26 categorical fields at the size
`peer_autoint.py` compares with DeepCTR (embedding 16, 3 layers, 2 heads of 32, residual, a
2^16 x 8 unified table, batch 1024, the product's optimizer) and reports:

- `step_cpu_ms`: process CPU ms per step of steady-state `fit` (no profiler attached);
- `ops_cpu_ms`: the same steps under TensorFlow's profiler, CPU ms per step summed per kernel
  kind and phase (`forward`, `backward` for ops under the gradient tape, `optimizer`), and
  `matmuls_cpu_ms`, the matrix-multiply kernels among them;
- `gemm_floor_cpu_ms`, the baseline: the step's matrix multiplies alone (every projection and
  attention matmul, forward and both backward products, at the step's shapes) on one thread in
  a child process. Any AutoInt of this size, ours or DeepCTR's, runs these; `gemm_share` is the
  floor over `step_cpu_ms`.

Prints one JSON line. Run: `.venv/bin/python benchmarks/step_profile.py` (under a minute).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is not a package
import train as bench

from unified_embedding.contract.schemas import criteo
from unified_embedding.models.autoint import AutoIntConfig

TABLE_ROWS = 2**16
# By the op's top name scope; the tape sums a tensor's gradients in root-scope `AddN` ops.
PHASES = {
    "gradient_tape": "backward",
    "AddN": "backward",
    "Adagrad": "optimizer",
    "Adam": "optimizer",
}


def phase_of(op_name: str) -> str:
    top = op_name.split("/", 1)[0]
    return next((p for prefix, p in PHASES.items() if top.startswith(prefix)), "forward")


def kernel_kind(event_name: str) -> str:
    """`scope/op:_MklMatMul` -> `MatMul` (oneDNN's kernels named as TensorFlow's ops)."""
    kind = event_name.rsplit(":", 1)[1]
    return kind.removeprefix("_MklNative").removeprefix("_Mkl")


def op_times(logdir: str, steps: int) -> dict[str, dict[str, float]]:
    """CPU ms per step per phase and kernel kind, from the profiler's host plane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    [path] = Path(logdir).rglob("*.xplane.pb")
    space = xplane_pb2.XSpace.FromString(path.read_bytes())
    plane = next(p for p in space.planes if p.name == "/host:CPU")
    totals: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in plane.lines:
        if not line.name.startswith("tf_"):  # TensorFlow's op threads
            continue
        for event in line.events:
            name = plane.event_metadata[event.metadata_id].name
            if ":" in name and "::" not in name:  # `op:kernel`, not the executor's wrappers
                totals[(phase_of(name), kernel_kind(name))] += event.duration_ps / 1e9 / steps
    out: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for (phase, kind), ms in sorted(totals.items(), key=lambda item: -item[1]):
        if ms >= 0.1:
            out[phase][kind] = round(ms, 2)
    return dict(out)


def profiled_step(precision: str, features: bench.Tensors, steps: int) -> dict[str, Any]:
    spec = criteo()
    categorical, attended = bench.categorical_only(spec, features)
    model = bench.compiled_model(categorical, TABLE_ROWS, precision, attended, seed=0)
    dataset = bench.cached_batches(dict(attended), len(attended["label"]), bench.BATCH_SIZE, 0)
    _, per_cpu_second = bench.timed_fit(model, dataset, steps)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
        tf.profiler.experimental.stop()
        ops = op_times(logdir, steps)
    matmuls = sum(ms for kinds in ops.values() for k, ms in kinds.items() if "MatMul" in k)
    return {
        "step_cpu_ms": round(1e3 / per_cpu_second, 1),
        "ops_cpu_ms": ops,
        "matmuls_cpu_ms": round(matmuls, 1),  # the step's matrix multiplies, as they ran in it
    }


def gemm_floor(precision: str, repeats: int = 30) -> float:
    """CPU ms of one step's matrix multiplies, forward and backward, on this (1-thread) process."""
    dtype = tf.bfloat16 if precision == "mixed_bfloat16" else tf.float32
    config, fields, batch = AutoIntConfig(), len(criteo().categorical_fields), bench.BATCH_SIZE
    units, heads = config.num_heads * config.head_dim, config.num_heads
    projections = 4 if config.use_residual else 3

    def normal(*shape: int) -> tf.Tensor:
        return tf.cast(tf.random.normal(shape), dtype)

    @tf.function
    def projection(rows: tf.Tensor, kernel: tf.Tensor, grad: tf.Tensor) -> tf.Tensor:
        out = tf.matmul(rows, kernel)  # forward, then d rows and d kernel
        d_rows = tf.matmul(grad, kernel, transpose_b=True)
        d_kernel = tf.matmul(rows, grad, transpose_a=True)
        return out[0, 0] + d_rows[0, 0] + d_kernel[0, 0]

    @tf.function
    def attention(a: tf.Tensor, b: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
        products = (
            tf.matmul(a, b, transpose_b=True),  # logits, and their two gradients
            tf.matmul(scores, b),
            tf.matmul(scores, a, transpose_a=True),
            tf.matmul(scores, a),  # the weighted sum, and its two gradients
            tf.matmul(scores, b, transpose_a=True),
            tf.matmul(a, b, transpose_b=True),
        )
        return tf.add_n([p[0, 0, 0] for p in products])

    def cpu_ms(fn: Any, *args: tf.Tensor) -> float:
        for _ in range(5):
            fn(*args)
        started = time.process_time()
        for _ in range(repeats):
            fn(*args)
        return (time.process_time() - started) / repeats * 1e3

    total, d_in = 0.0, criteo().embedding_dim
    grad = normal(batch * fields, projections * units)
    q = normal(batch * heads, fields, config.head_dim)
    scores = normal(batch * heads, fields, fields)
    for _ in range(config.num_layers):
        total += cpu_ms(projection, normal(batch * fields, d_in), normal(d_in, grad.shape[1]), grad)
        total += cpu_ms(attention, q, q + 0, scores)
        d_in = units
    return round(total, 1)


def floor_in_child(precision: str) -> float:
    """`gemm_floor` in a child process limited to one TensorFlow thread."""
    command = [sys.executable, __file__, "--floor-only", "--precisions", precision]
    return float(subprocess.run(command, capture_output=True, check=True, text=True).stdout)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--floor-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    precisions = args.precisions.split(",")
    if args.floor_only:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        print(gemm_floor(precisions[0]))
        return {}
    tf.get_logger().setLevel("ERROR")
    features = bench.encoded_rows(args.rows, 0, criteo())
    result: dict[str, Any] = {"benchmark": "step_profile", "batch_size": bench.BATCH_SIZE}
    for precision in precisions:
        measured = profiled_step(precision, features, args.steps)
        floor = floor_in_child(precision)
        share = round(floor / measured["step_cpu_ms"], 2)
        result[precision] = {**measured, "gemm_floor_cpu_ms": floor, "gemm_share": share}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
