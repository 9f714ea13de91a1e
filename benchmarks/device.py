"""Training, prediction and batch-1 serving speed on the device TensorFlow sees: the first GPU
if there is one, else the CPU.

On generated Criteo rows encoded once in memory, the paper's AutoInt on a `2^--table-log2 x 8`
`UnifiedEmbedding` table with the product's optimizer (sparse Adagrad on the table, Adam on the
rest) is measured the way `train.py` measures it (steady-state `fit` over batches made
beforehand, `tf.function` prediction over in-memory batches of `--batch-size` rows):

  train      examples/s (and per process CPU-second) in float32 and in mixed precision: on a
             GPU `mixed_float16` with dynamic loss scaling, plus `mixed_bfloat16` where the GPU
             has bfloat16 natively (compute capability 8 on: what `ue train --precision auto`
             picks there); on a CPU `mixed_bfloat16` (`--mixed` chooses others);
             `--repeats` alternates the precisions that many times and the median is reported
  predict    rows/s of batched prediction, per precision
  batch_1    p50/p99 of one-row calls of the float32 model exported as `ue export` writes it,
             through its `packed` signature in process (what the server calls), and of the
             in-memory model's `tf.function` next to it; `export_seconds` is the export's time
  baseline   in the same run: float32 for mixed precision (`mixed_vs_float32`); with a GPU,
             the same measurements again in a child process that sees no GPU (`cpu`), and
             `gpu_vs_cpu`, the GPU's figures over the CPU's

`table_device` is where the shared table's variable was placed (TensorFlow's default placement,
as `ue train` leaves it). Prints one JSON line; a few minutes on 2 CPU cores with the defaults.

Run: `.venv/bin/python benchmarks/device.py`; tiny: `--rows 2000 --steps 2 --batch-size 256`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is not a package
import serve as serve_bench
import train as bench

from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import FeatureSpec, TableSpec
from unified_embedding.exported.model import ExportedModel, raw_batches
from unified_embedding.exported.writer import export
from unified_embedding.layers.unified import UnifiedEmbedding
from unified_embedding.models.autoint import (
    PRECISIONS,
    AutoInt,
    AutoIntConfig,
    InteractingStack,
    build_autoint,
)
from unified_embedding.rows.reader import parse_bytes
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training import experiment
from unified_embedding.training.config import TrainConfig
from unified_embedding.training.precision import has_native_bfloat16

Tensors = Mapping[str, tf.Tensor]
LATENCY_ROWS = 64  # distinct one-row requests, sent round-robin


def device_info() -> dict[str, Any]:
    """The device the measurements run on, named as TensorFlow and the hardware name it."""
    gpus = tf.config.list_physical_devices("GPU")
    info: dict[str, Any] = {
        "tensorflow": tf.__version__,
        "built_with_cuda": tf.test.is_built_with_cuda(),
        "gpus": len(gpus),
        "cpus": os.cpu_count(),
        "native_bfloat16": has_native_bfloat16(),
    }
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability")
        return {
            "device": tf.config.list_logical_devices("GPU")[0].name,
            "device_type": "GPU",
            "device_name": details.get("device_name", gpus[0].name),
            "compute_capability": ".".join(map(str, capability)) if capability else None,
            **info,
        }
    return {
        "device": tf.config.list_logical_devices("CPU")[0].name,
        "device_type": "CPU",
        "device_name": cpu_name(),
        "compute_capability": None,
        **info,
    }


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def mixed_policies(on_gpu: bool) -> list[str]:
    """float16 with loss scaling on a GPU (tensor cores since Volta), and bfloat16 too where the
    GPU has it natively; bfloat16 on a CPU (float16 has no fast CPU kernels)."""
    if not on_gpu:
        return ["mixed_bfloat16"]
    return ["mixed_float16", *(["mixed_bfloat16"] if has_native_bfloat16() else [])]


class LossScaledAutoInt(AutoInt):
    """AutoInt whose step scales the loss before the gradients and unscales them after (the
    optimizer must be a `LossScaleOptimizer`): float16 gradients underflow without it. TFRS's
    `train_step` does neither, so `mixed_float16` needs this step."""

    def train_step(self, inputs: Tensors) -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            total = loss + tf.add_n([tf.reduce_sum(x) for x in self.losses] or [0.0])
            scaled = self.optimizer.get_scaled_loss(total)
        scaled_gradients = tape.gradient(scaled, self.trainable_variables)
        gradients = self.optimizer.get_unscaled_gradients(scaled_gradients)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables, strict=True))
        return {**{m.name: m.result() for m in self.metrics}, "loss": loss}


def build(spec: FeatureSpec, precision: str) -> AutoInt:
    """The paper's AutoInt on `spec`'s shared table in `precision` (`compile_on` compiles it).
    `mixed_float16` is not an `AutoIntConfig` precision (`ue train` does not scale the loss):
    the same blocks are injected with that policy into `LossScaledAutoInt` instead."""
    embedding = UnifiedEmbedding(spec)
    if precision in PRECISIONS:
        return build_autoint(embedding, AutoIntConfig(precision=precision))
    plain = build_autoint(embedding, AutoIntConfig())
    interaction = InteractingStack.from_config(
        {**plain.interaction.get_config(), "dtype": precision}
    )
    return LossScaledAutoInt(embedding, interaction, head=plain.head)


class ScalableComposite(tfrs.experimental.optimizers.CompositeOptimizer):
    """TFRS's CompositeOptimizer whose `apply_gradients` returns an op: a LossScaleOptimizer
    applies or skips (non-finite gradients) in a `cond` whose branches must both return one."""

    def apply_gradients(
        self,
        grads_and_vars: Any,
        name: str | None = None,
        experimental_aggregate_gradients: bool = True,
    ) -> tf.Operation:
        super().apply_gradients(grads_and_vars, name, experimental_aggregate_gradients)
        return tf.no_op()


def compile_on(model: AutoInt, features: Tensors, precision: str, config: TrainConfig) -> None:
    model({k: v[: config.batch_size] for k, v in features.items()})  # variables first
    optimizer = experiment.make_optimizer(model, config, "unified")
    if precision == "mixed_float16":
        # The product's optimizers and variable lists, with dynamic loss scaling around them.
        scalable = ScalableComposite(optimizer._optimizers_and_vars)
        optimizer = keras.mixed_precision.LossScaleOptimizer(scalable)
    model.compile(optimizer=optimizer)


def measure(
    spec: FeatureSpec, precision: str, features: Tensors, args: argparse.Namespace
) -> tuple[dict[str, Any], AutoInt]:
    """Training and prediction speed of a freshly built model in `precision`."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(args.seed)
    config = TrainConfig(args.batch_size, seed=args.seed)
    model = build(spec, precision)
    compile_on(model, features, precision, config)
    rate, cpu_rate = bench.train_examples_per_second(
        model, features, args.steps, args.seed, args.batch_size
    )
    predict = bench.predict_examples_per_second(model, features, args.batch_size)
    return {
        "train_examples_per_second": rate,
        "train_examples_per_cpu_second": cpu_rate,
        "predict_rows_per_second": predict,
    }, model


def summarize(runs: list[dict[str, float]]) -> dict[str, Any]:
    """Medians over the repeats, each repeat's training rate beside them."""
    return {
        **{key: round(statistics.median(r[key] for r in runs)) for key in runs[0]},
        "train_examples_per_second_runs": [round(r["train_examples_per_second"]) for r in runs],
    }


def packed_inputs(spec: FeatureSpec, count: int, seed: int) -> list[dict[str, tf.Tensor]]:
    """`count` one-row inputs of the `packed` signature, from rows not trained on."""
    rows = parse_bytes(spec, generate(count, SyntheticConfig(seed=seed), 10**7).to_tsv_bytes())
    (raw,) = raw_batches(spec, rows, batch_size=count)
    categorical = tf.stack([raw[f.name] for f in spec.categorical_fields], 1)
    numeric = tf.stack([raw[f.name] for f in spec.numeric_fields], 1)
    return [
        {"categorical": categorical[i : i + 1], "numeric": numeric[i : i + 1]} for i in range(count)
    ]


def batch_one(
    model: AutoInt, spec: FeatureSpec, features: Tensors, args: argparse.Namespace
) -> dict[str, Any]:
    """One-row latency of the exported model's `packed` signature and of the in-memory model."""
    with tempfile.TemporaryDirectory(prefix="ue-bench-device-") as tmp:
        started = time.perf_counter()
        exported = ExportedModel.load(export(model, spec, tmp))
        export_seconds = time.perf_counter() - started
        packed = exported.loaded.signatures["packed"]
        requests = packed_inputs(spec, LATENCY_ROWS, args.seed + 1)
        sent = iter(range(10**9))

        def call_exported() -> None:
            packed(**requests[next(sent) % LATENCY_ROWS])["probability"].numpy()

        exported_ms = serve_bench.percentiles(serve_bench.timed(call_exported, args.calls))
    probabilities = tf.function(model.probabilities)
    inputs = {k: v for k, v in features.items() if k != "label"}
    ones = [{k: v[i : i + 1] for k, v in inputs.items()} for i in range(LATENCY_ROWS)]

    def call_in_memory() -> None:
        probabilities(ones[next(sent) % LATENCY_ROWS]).numpy()

    return {
        "exported_packed": exported_ms,
        "in_memory_tf_function": serve_bench.percentiles(
            serve_bench.timed(call_in_memory, args.calls)
        ),
        "calls": args.calls,
        "export_seconds": round(export_seconds, 1),
    }


def cpu_baseline(argv: Sequence[str]) -> dict[str, Any]:
    """The same measurements in a child process that sees no GPU."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, __file__, *argv, "--device", "cpu"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def gpu_vs_cpu(gpu: Mapping[str, Any], cpu: Mapping[str, Any]) -> dict[str, float | None]:
    """The GPU's figures over the CPU's: float32 and each side's fastest precision for training,
    float32 prediction, and the CPU's batch-1 p50 over the GPU's (above 1: the GPU is faster)."""
    fastest = {
        side: max(r["train"][p]["train_examples_per_second"] for p in r["train"])
        for side, r in (("gpu", gpu), ("cpu", cpu))
    }
    f32 = [r["train"]["float32"] for r in (gpu, cpu)]
    return {
        "train_float32": ratio(
            f32[0]["train_examples_per_second"], f32[1]["train_examples_per_second"]
        ),
        "train_fastest": ratio(fastest["gpu"], fastest["cpu"]),
        "predict_float32": ratio(
            f32[0]["predict_rows_per_second"], f32[1]["predict_rows_per_second"]
        ),
        "batch_1_p50": ratio(
            cpu["batch_1"]["exported_packed"]["p50_ms"], gpu["batch_1"]["exported_packed"]["p50_ms"]
        ),
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000, help="generated rows, in memory")
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per run")
    parser.add_argument("--batch-size", type=int, default=bench.BATCH_SIZE)
    parser.add_argument("--table-log2", type=int, default=20, help="shared table: 2^N rows")
    parser.add_argument(
        "--mixed",
        default="auto",
        help="comma-separated mixed precisions beside float32 (mixed_float16, mixed_bfloat16); "
        "auto: mixed_float16 (+ mixed_bfloat16 where native) on a GPU, mixed_bfloat16 elsewhere",
    )
    parser.add_argument("--repeats", type=int, default=2, help="alternations of the precisions")
    parser.add_argument("--calls", type=int, default=500, help="batch-1 calls timed per path")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu"),
        default="auto",
        help="auto: the first GPU if any (then the CPU again as the baseline); cpu: hide GPUs",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.rows < args.batch_size:
        parser.error(
            f"`--rows` should be >= `--batch-size` ({args.batch_size}). "
            f"Received: `--rows={args.rows}`"
        )
    for name in ("steps", "repeats", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"`--{name}` should be >= 1. Received: `--{name}={getattr(args, name)}`")
    return args


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    started = time.perf_counter()
    if args.device == "cpu":
        tf.config.set_visible_devices([], "GPU")
    tf.get_logger().setLevel("ERROR")
    info = device_info()
    on_gpu = info["device_type"] == "GPU"
    mixed = mixed_policies(on_gpu) if args.mixed == "auto" else args.mixed.split(",")
    precisions = ["float32", *mixed]
    spec = criteo()
    spec = spec.replace(table=TableSpec(rows=2**args.table_log2, width=bench.TABLE_WIDTH))
    features = bench.encoded_rows(args.rows, args.seed, spec)
    runs: dict[str, list[dict[str, float]]] = {p: [] for p in precisions}
    float32_model = None
    for _ in range(args.repeats):
        for precision in precisions:
            figures, model = measure(spec, precision, features, args)
            runs[precision].append(figures)
            if precision == "float32":
                float32_model = model
    assert float32_model is not None
    train = {p: summarize(r) for p, r in runs.items()}
    result: dict[str, Any] = {
        "benchmark": "device",
        **info,
        "rows": args.rows,
        "batch_size": args.batch_size,
        "table_rows": 2**args.table_log2,
        "steps": args.steps,
        "repeats": args.repeats,
        "mixed_precision": mixed,
        "table_device": float32_model.embedding.tables[0].device,
        "train": train,
        "mixed_vs_float32": {
            p: {
                "train": ratio(
                    train[p]["train_examples_per_second"],
                    train["float32"]["train_examples_per_second"],
                ),
                "predict": ratio(
                    train[p]["predict_rows_per_second"], train["float32"]["predict_rows_per_second"]
                ),
            }
            for p in mixed
        },
        "batch_1": batch_one(float32_model, spec, features, args),
    }
    if on_gpu:
        argv_list = list(sys.argv[1:] if argv is None else argv)
        result["cpu"] = cpu_baseline(argv_list)
        result["gpu_vs_cpu"] = gpu_vs_cpu(result, result["cpu"])
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
