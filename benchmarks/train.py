"""Training and batch-prediction throughput of AutoInt on `UnifiedEmbedding` per shared-table size.

Generates `--rows` Criteo-format rows in memory, encodes them once (the hashing does not depend
on the table size), then for each precision (`--precisions`: float32, the baseline, and
mixed_bfloat16) and each table of `2^s` rows (`--sizes`) builds AutoInt with the paper's
defaults, compiles it with the product's optimizer (sparse Adagrad on the table, Adam on the
dense layers) and measures, in steady state (tracing and the shuffle buffer's fill excluded):
training examples/s of `model.fit`, batch-1024 prediction examples/s, the achieved training
GFLOP/s (analytic FLOPs, see `autoint_flops_per_example`) and the process's peak RSS so far.
Prints one JSON line.

Run: `.venv/bin/python benchmarks/train.py --rows 500000`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import json
import resource
import time
from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding import experiment
from unified_embedding.experiment import TrainConfig
from unified_embedding.layers.unified import UnifiedEmbedding
from unified_embedding.model import AutoInt, AutoIntConfig, build_autoint
from unified_embedding.rows import parse_bytes
from unified_embedding.schemas import criteo
from unified_embedding.spec import FeatureSpec, TableSpec
from unified_embedding.synthetic import SyntheticConfig, generate

BATCH_SIZE = 1024
TABLE_WIDTH = 8
WARMUP_STEPS = 20  # tracing, the shuffle buffer's fill and the first allocations
PREDICT_WARMUP_BATCHES = 5
PREDICT_BATCHES = 50
MIN_ROWS = (PREDICT_WARMUP_BATCHES + PREDICT_BATCHES) * BATCH_SIZE  # distinct batches
TARGETS = {
    "train_examples_per_second": 21_500,
    "predict_examples_per_second": 50_000,
    "max_slowdown_2_22_vs_2_16": 0.2,
}

Tensors = Mapping[str, tf.Tensor]


def autoint_flops_per_example(fields: int, embedding_dim: int, config: AutoIntConfig) -> int:
    """Forward-pass FLOPs of AutoInt for one example (multiply-add = 2 FLOPs).

    With `F` fields, `H` heads of width `dh` and `d_in` the layer's input width (`embedding_dim`
    for the first interacting layer, `H * dh` after), each interacting layer costs

        Q, K, V and residual projections:   4 * 2 * F * d_in * (H * dh)   (3 without residual)
        attention logits + weighted sum:    2 * 2 * H * F * F * dh

    and the logit head `2 * F * (H * dh)`. Embedding gathers, softmax and ReLU are ignored
    (~0 FLOPs next to these). Training costs about 3x this (forward + two backward matmuls).
    AutoInt+'s DNN (`config.dnn_units`) is not counted.
    """
    units = config.num_heads * config.head_dim
    projections = 4 if config.use_residual else 3
    total, d_in = 0, embedding_dim
    for _ in range(config.num_layers):
        total += projections * 2 * fields * d_in * units
        total += 2 * 2 * config.num_heads * fields * fields * config.head_dim
        d_in = units
    return total + 2 * fields * units


class _StepTimer(keras.callbacks.Callback):
    """Wall-clock time from the end of batch `start` to the end of the last batch seen."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self._supports_tf_logs = True  # don't convert the logs to NumPy after every batch
        self.start = start
        self.started = self.ended = 0.0

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        now = time.perf_counter()
        if batch == self.start:
            self.started = now
        self.ended = now


def encoded_rows(rows: int, seed: int, spec: FeatureSpec) -> dict[str, tf.Tensor]:
    """`rows` generated rows -> encoded features plus `label`, as the experiments train on."""
    batch = generate(rows, SyntheticConfig(seed=seed))
    return experiment.encode(spec, parse_bytes(spec, batch.to_tsv_bytes()))


def train_examples_per_second(model: AutoInt, features: Tensors, steps: int, seed: int) -> float:
    """Steady-state `model.fit` throughput: one fit, timed after its first WARMUP_STEPS steps.

    One fit rather than a warm-up fit and a timed one: each fit opens a new iterator, whose
    shuffle buffer (as large as the data, like the product's) would refill inside the timing.
    """
    dataset = (
        tf.data.Dataset.from_tensor_slices(dict(features))
        .shuffle(len(features["label"]), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH_SIZE, drop_remainder=True)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    timer = _StepTimer(start=WARMUP_STEPS - 1)
    model.fit(dataset, epochs=1, steps_per_epoch=WARMUP_STEPS + steps, verbose=0, callbacks=[timer])
    return steps * BATCH_SIZE / (timer.ended - timer.started)


def predict_examples_per_second(model: AutoInt, features: Tensors) -> float:
    """`tf.function(model.probabilities)` over in-memory batches of BATCH_SIZE rows."""
    inputs = {k: v for k, v in features.items() if k != "label"}
    count = PREDICT_WARMUP_BATCHES + PREDICT_BATCHES
    batches = list(
        tf.data.Dataset.from_tensor_slices(inputs)
        .batch(BATCH_SIZE, drop_remainder=True)
        .take(count)
    )
    probabilities = tf.function(model.probabilities)
    for batch in batches[:PREDICT_WARMUP_BATCHES]:
        probabilities(batch).numpy()
    started = time.perf_counter()
    for batch in batches[PREDICT_WARMUP_BATCHES:]:
        probabilities(batch).numpy()
    return PREDICT_BATCHES * BATCH_SIZE / (time.perf_counter() - started)


def measure_size(
    spec: FeatureSpec, table_rows: int, precision: str, features: Tensors, steps: int, seed: int
) -> dict[str, float | int | str]:
    """Throughputs of a freshly built and compiled model with a `table_rows`-row shared table."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model_config = AutoIntConfig(precision=precision)
    model = build_autoint(
        UnifiedEmbedding(spec.replace(table=TableSpec(rows=table_rows, width=TABLE_WIDTH))),
        model_config,
    )
    model({k: v[:BATCH_SIZE] for k, v in features.items()})  # variables before the optimizers
    model.compile(
        optimizer=experiment.make_optimizer(model, TrainConfig(BATCH_SIZE, seed=seed), "unified")
    )
    train = train_examples_per_second(model, features, steps, seed)
    predict = predict_examples_per_second(model, features)
    flops = 3 * autoint_flops_per_example(len(spec.fields), spec.embedding_dim, model_config)
    return {
        "precision": precision,
        "table_rows": table_rows,
        "train_examples_per_second": round(train),
        "predict_examples_per_second": round(predict),
        "train_gflops_per_second": round(flops * train / 1e9, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--sizes", default="16,20,22", help="log2 of the shared-table rows")
    parser.add_argument(
        "--precisions",
        default="float32,mixed_bfloat16",
        help="comma-separated; float32 is the baseline bfloat16 matrix work is measured against",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.rows < MIN_ROWS:
        parser.error(f"`--rows` should be >= {MIN_ROWS}. Received: `--rows={args.rows}`")
    tf.get_logger().setLevel("ERROR")
    spec = criteo()
    features = encoded_rows(args.rows, args.seed, spec)
    results = [
        measure_size(spec, 2 ** int(s), precision, features, args.steps, args.seed)
        for precision in args.precisions.split(",")
        for s in args.sizes.split(",")
    ]
    slowdown = {}
    for precision in args.precisions.split(","):
        by_rows = {
            r["table_rows"]: float(r["train_examples_per_second"])
            for r in results
            if r["precision"] == precision
        }
        if {2**16, 2**22} <= by_rows.keys():
            slowdown[precision] = round(1 - by_rows[2**22] / by_rows[2**16], 3)
    result: dict[str, Any] = {
        "benchmark": "train",
        "rows": args.rows,
        "batch_size": BATCH_SIZE,
        "results": results,
        "targets": TARGETS,
        "slowdown_2_22_vs_2_16": slowdown,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
