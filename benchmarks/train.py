"""Training and batch-prediction throughput of AutoInt on `UnifiedEmbedding` per shared-table size.

Generates `--rows` Criteo-format rows in memory, encodes them once (the hashing does not depend
on the table size), then for each precision (`--precisions`: float32, the baseline, and
mixed_bfloat16) and each table of `2^s` rows (`--sizes`) builds AutoInt with the paper's
defaults, compiles it with the product's optimizer (sparse Adagrad on the table, Adam on the
dense layers) and measures, in steady state (tracing excluded, batches made beforehand):
training examples/s of `model.fit`, batch-1024 prediction examples/s, the achieved training
GFLOP/s (analytic FLOPs, see `autoint_flops_per_example`) and the process's peak RSS so far.
`--categorical-only` attends over the 26 categorical fields alone, as DeepCTR's AutoInt does
(its numeric fields only reach its linear part): the configuration to compare with that peer at
equal model size (embedding 16, 3 layers, 2 heads of 32, residual).

`--end-to-end` measures `ue train` itself instead: it writes `--rows` generated rows, runs the
preprocessing job on them (in-process), then trains through `ue train`'s `train` (records, shuffle,
checkpoints every `--checkpoint-every` steps, an evaluation between periods) for
`--periods` periods of `--steps` steps, and reads the examples/s `ue train` logs per period
(validation excluded, as `ue train` reports it). Next to it, in the same run, the in-memory
step rate of the same model (same spec, table, precision, optimizer and batch size) fed from
the same rows already in memory, measured before and after the end-to-end run;
`end_to_end_vs_step` is the mean of the periods after the first over the mean step rate
(target 0.9); `end_to_end_vs_step_cpu` the same per process CPU-second, which a busy shared
machine distorts least (the input pipeline's threads count: on two cores they take the step's).

Prints one JSON line.

Run: `.venv/bin/python benchmarks/train.py --rows 500000`, or
`.venv/bin/python benchmarks/train.py --end-to-end --rows 200000`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import contextlib
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import FeatureSpec, TableSpec
from unified_embedding.layers.unified import UnifiedEmbedding
from unified_embedding.models.autoint import AutoInt, AutoIntConfig, build_autoint
from unified_embedding.rows.reader import parse_bytes
from unified_embedding.synthetic import SyntheticConfig, generate, write_tsv
from unified_embedding.training import experiment
from unified_embedding.training.data import load_data_spec, training_dataset
from unified_embedding.training.experiment import TrainConfig
from unified_embedding.training.inputs import count_rows
from unified_embedding.training.job import TrainJob
from unified_embedding.training.loop import train
from unified_embedding.training.precision import resolve_precision
from unified_embedding.training.run import build_model, run_config

BATCH_SIZE = 1024
TABLE_WIDTH = 8
WARMUP_STEPS = 20  # tracing and the first allocations
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
    """Wall-clock and process CPU time from the end of batch `start` to the end of the last
    batch seen (CPU time: what a busy shared machine distorts least)."""

    def __init__(self, start: int) -> None:
        super().__init__()
        self._supports_tf_logs = True  # don't convert the logs to NumPy after every batch
        self.start = start
        self.started = self.ended = self.cpu_started = self.cpu_ended = 0.0

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if batch == self.start:
            self.started, self.cpu_started = now, cpu
        self.ended, self.cpu_ended = now, cpu


class _PeriodTimer(keras.callbacks.Callback):
    """Wall-clock and process CPU seconds of each epoch's training steps (its validation
    excluded, as `ExamplesPerSecond` times them for `ue train`'s logs)."""

    def __init__(self) -> None:
        super().__init__()
        self.periods: list[tuple[float, float]] = []
        self._started = (0.0, 0.0)
        self._trained: tuple[float, float] | None = None

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._started, self._trained = (time.perf_counter(), time.process_time()), None

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._trained = (time.perf_counter(), time.process_time())

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        ended = self._trained or (time.perf_counter(), time.process_time())
        self.periods.append((ended[0] - self._started[0], ended[1] - self._started[1]))


def encoded_rows(rows: int, seed: int, spec: FeatureSpec) -> dict[str, tf.Tensor]:
    """`rows` generated rows -> encoded features plus `label`, as the experiments train on."""
    batch = generate(rows, SyntheticConfig(seed=seed))
    return experiment.encode(spec, parse_bytes(spec, batch.to_tsv_bytes()))


def cached_batches(elements: Any, rows: int, batch_size: int, seed: int) -> tf.data.Dataset:
    """`rows` in-memory rows shuffled once and batched, all batches made before returning: only
    the step is timed (a row-by-row in-memory shuffle and batch would take CPU from it)."""
    dataset = (
        tf.data.Dataset.from_tensor_slices(elements)
        .shuffle(rows, seed=seed)
        .batch(batch_size, drop_remainder=True)
        .cache()
    )
    for _ in dataset:  # fill the cache
        pass
    return dataset.repeat().prefetch(tf.data.AUTOTUNE)


def timed_fit(model: keras.Model, dataset: tf.data.Dataset, steps: int) -> tuple[float, float]:
    """Steps per second and per process CPU-second of one `fit`, timed after WARMUP_STEPS."""
    timer = _StepTimer(start=WARMUP_STEPS - 1)
    fit_steps = WARMUP_STEPS + steps
    model.fit(dataset, epochs=1, steps_per_epoch=fit_steps, verbose=0, callbacks=[timer])
    return steps / (timer.ended - timer.started), steps / (timer.cpu_ended - timer.cpu_started)


def train_examples_per_second(
    model: AutoInt, features: Tensors, steps: int, seed: int, batch_size: int = BATCH_SIZE
) -> tuple[float, float]:
    """Steady-state `model.fit` examples per second and per process CPU-second."""
    dataset = cached_batches(dict(features), len(features["label"]), batch_size, seed)
    per_second, per_cpu_second = timed_fit(model, dataset, steps)
    return per_second * batch_size, per_cpu_second * batch_size


def predict_examples_per_second(
    model: AutoInt, features: Tensors, batch_size: int = BATCH_SIZE
) -> float:
    """`tf.function(model.probabilities)` over in-memory batches of `batch_size` rows (the rows
    repeat when there are fewer than the batches need)."""
    inputs = {k: v for k, v in features.items() if k != "label"}
    count = PREDICT_WARMUP_BATCHES + PREDICT_BATCHES
    batches = list(
        tf.data.Dataset.from_tensor_slices(inputs)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .take(count)
    )
    probabilities = tf.function(model.probabilities)
    for batch in batches[:PREDICT_WARMUP_BATCHES]:
        probabilities(batch).numpy()
    started = time.perf_counter()
    for batch in batches[PREDICT_WARMUP_BATCHES:]:
        probabilities(batch).numpy()
    return PREDICT_BATCHES * batch_size / (time.perf_counter() - started)


def compiled_model(
    spec: FeatureSpec, table_rows: int, precision: str, features: Tensors, seed: int
) -> AutoInt:
    """The paper's AutoInt on a fresh `table_rows`-row shared table, compiled with the product's
    optimizer (sparse Adagrad on the table, Adam on the rest)."""
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
    return model


def measure_size(
    spec: FeatureSpec, table_rows: int, precision: str, features: Tensors, steps: int, seed: int
) -> dict[str, float | int | str]:
    """Throughputs of a freshly built and compiled model with a `table_rows`-row shared table."""
    model = compiled_model(spec, table_rows, precision, features, seed)
    model_config = AutoIntConfig(precision=precision)
    train_rate, train_cpu = train_examples_per_second(model, features, steps, seed)
    predict = predict_examples_per_second(model, features)
    flops = 3 * autoint_flops_per_example(len(spec.fields), spec.embedding_dim, model_config)
    return {
        "precision": precision,
        "table_rows": table_rows,
        "train_examples_per_second": round(train_rate),
        "train_examples_per_cpu_second": round(train_cpu),
        "predict_examples_per_second": round(predict),
        "train_gflops_per_second": round(flops * train_rate / 1e9, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def categorical_only(spec: FeatureSpec, features: Tensors) -> tuple[FeatureSpec, Tensors]:
    """The spec and features without the numeric fields: attention over the categorical ones."""
    kept = spec.replace(fields=spec.categorical_fields)
    return kept, {k: v for k, v in features.items() if k == "label" or k in kept.field_names}


def records_in_memory(spec: FeatureSpec, data_dir: Path, split: str) -> dict[str, tf.Tensor]:
    """Every row of a split of the pipeline's records, as one batch of tensors."""
    rows = count_rows(spec, data_dir, split)
    return dict(next(iter(training_dataset(spec, data_dir, split, rows, shuffle=False))))


def logged_examples_per_second(log_dir: Path) -> list[float]:
    """The per-period `examples_per_second` `ue train` wrote to TensorBoard, in step order."""
    values: dict[int, float] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "epoch_examples_per_second":
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return [values[step] for step in sorted(values)]


def step_rate(job: TrainJob, features: Tensors, steps: int) -> tuple[float, float]:
    """In-memory `fit` examples/s of the model `job` trains, built and compiled as `ue train`
    builds it (its spec, table, precision, optimizer and batch size)."""
    spec = load_data_spec(job.data_dir)
    run = run_config(job, spec, resolve_precision(job.precision))
    keras.backend.clear_session()
    keras.utils.set_random_seed(job.optimizer.seed)
    model = build_model(run)
    model({k: v[: job.batch_size] for k, v in features.items()})
    model.compile(optimizer=experiment.make_optimizer(model, job.optimizer, job.layout))
    return train_examples_per_second(model, features, steps, job.optimizer.seed, job.batch_size)


def end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    """`ue train`'s examples/s from records next to the in-memory step rate, in one run."""
    from pipelines.preprocess import run as preprocess

    with tempfile.TemporaryDirectory(prefix="ue-bench-train-") as tmp:
        root = Path(tmp)
        write_tsv(root / "rows.tsv", args.rows, SyntheticConfig(seed=args.seed))
        started = time.perf_counter()
        stats = preprocess(
            [
                "--input",
                str(root / "rows.tsv"),
                "--schema",
                "criteo",
                "--output",
                str(root / "prep"),
            ]
        )
        preprocess_seconds = time.perf_counter() - started
        job = TrainJob(
            str(root / "prep"),
            str(root / "model"),
            steps=args.periods * args.steps,
            eval_every=args.steps,
            checkpoint_every=args.checkpoint_every,
            batch_size=args.batch_size,
            precision=args.precision,
            optimizer=TrainConfig(seed=args.seed),
        )
        features = records_in_memory(load_data_spec(job.data_dir), root / "prep", "train")
        before, before_cpu = step_rate(job, features, args.steps)
        keras.backend.clear_session()
        timer = _PeriodTimer()
        with contextlib.redirect_stdout(sys.stderr):  # fit's progress lines: stdout is the JSON
            summary = train(job, extra_callbacks=[timer])
        logged = logged_examples_per_second(root / "model" / "logs" / "train")
        after, after_cpu = step_rate(job, features, args.steps)
    step, step_cpu = (before + after) / 2, (before_cpu + after_cpu) / 2
    examples = args.steps * args.batch_size
    steady = statistics.mean(logged[1:])
    steady_cpu = examples * (len(timer.periods) - 1) / sum(cpu for _, cpu in timer.periods[1:])
    return {
        "benchmark": "train_end_to_end",
        "rows": args.rows,
        "train_rows": stats["rows_by_split"]["train"],
        "preprocess_seconds": round(preprocess_seconds, 1),
        "batch_size": args.batch_size,
        "precision": summary["precision"],
        "embedding_params": summary["embedding_params"],
        "steps_per_period": args.steps,
        "checkpoint_every": args.checkpoint_every,
        "ue_train_examples_per_second_by_period": [round(p) for p in logged],
        "ue_train_examples_per_cpu_second_by_period": [
            round(examples / cpu) for _, cpu in timer.periods
        ],
        "ue_train_examples_per_second": round(steady),
        "ue_train_examples_per_cpu_second": round(steady_cpu),
        "step_examples_per_second": round(step),
        "step_examples_per_cpu_second": round(step_cpu),
        "step_examples_per_second_before_after": [round(before), round(after)],
        "step_examples_per_cpu_second_before_after": [round(before_cpu), round(after_cpu)],
        "end_to_end_vs_step": round(steady / step, 3),
        "end_to_end_vs_step_cpu": round(steady_cpu / step_cpu, 3),
        "target_end_to_end_vs_step": 0.9,
    }


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--steps", type=int, default=150, help="timed steps (per period)")
    parser.add_argument("--sizes", default="16,20,22", help="log2 of the shared-table rows")
    parser.add_argument(
        "--precisions",
        default="float32,mixed_bfloat16",
        help="comma-separated; float32 is the baseline bfloat16 matrix work is measured against",
    )
    parser.add_argument(
        "--categorical-only",
        action="store_true",
        help="attend over the categorical fields only, as DeepCTR's AutoInt does",
    )
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="`ue train` from preprocessed records next to the in-memory step rate",
    )
    e2e = parser.add_argument_group("--end-to-end (defaults: `ue train`'s)")
    e2e.add_argument("--periods", type=int, default=3, help="evaluation periods; the 1st warms up")
    e2e.add_argument("--batch-size", type=int, default=TrainJob.batch_size)
    e2e.add_argument("--checkpoint-every", type=int, default=TrainJob.checkpoint_every)
    e2e.add_argument("--precision", default=TrainJob.precision)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.rows < MIN_ROWS:
        parser.error(f"`--rows` should be >= {MIN_ROWS}. Received: `--rows={args.rows}`")
    if args.periods < 2:
        parser.error(f"`--periods` should be >= 2. Received: `--periods={args.periods}`")
    tf.get_logger().setLevel("ERROR")
    if args.end_to_end:
        result = end_to_end(args)
        print(json.dumps(result))
        return result
    spec = criteo()
    features = encoded_rows(args.rows, args.seed, spec)
    if args.categorical_only:
        spec, features = categorical_only(spec, features)
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
        "fields": len(spec.fields),
        "results": results,
        "targets": TARGETS,
        "slowdown_2_22_vs_2_16": slowdown,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
