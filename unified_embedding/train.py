"""`ue train`: AutoInt on the pipeline's records, with evaluation, early stopping and resume.

    ue train --data prep/ --model-dir runs/m1 --embedding unified --budget-mb 1 --steps 20000

A run killed at any point (even SIGKILL) and started again with the same command continues
from its last checkpoint (`keras.callbacks.BackupAndRestore`, every `--checkpoint-every`
steps). Evaluation on the eval split every `--eval-every` steps drives early stopping on AUC;
TensorBoard logs go to `<model-dir>/logs`. The best weights and `run.json` (layout, table,
model config, spec fingerprint) are what `ue export` reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding.budget import parse_budget, plan_budget
from unified_embedding.data import load_data_spec, training_dataset
from unified_embedding.experiment import TrainConfig, build_embedding, make_optimizer
from unified_embedding.model import AutoInt, AutoIntConfig, build_autoint
from unified_embedding.spec import FeatureSpec

STRATEGIES = ("default", "mirrored", "multi_worker")
RUN_FILE = "run.json"
WEIGHTS = "weights/best"
TRAINABLE_LAYOUTS = ("unified", "per_feature")


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild the trained model (written to `run.json`)."""

    layout: str
    budget_bytes: int
    spec: dict[str, Any]  # the data's spec with the table sized for the budget
    model: dict[str, Any]
    data_fingerprint: str  # of the records' spec.json

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.spec)

    def autoint_config(self) -> AutoIntConfig:
        return AutoIntConfig(**self.model)

    def save(self, model_dir: Path) -> None:
        (model_dir / RUN_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, model_dir: str | Path) -> RunConfig:
        return cls(**json.loads((Path(model_dir) / RUN_FILE).read_text()))


@dataclass(frozen=True)
class TrainJob:
    data_dir: str
    model_dir: str
    layout: str = "unified"
    budget: str | None = None  # default: the table in the data's spec.json
    steps: int = 10_000
    eval_every: int = 1_000
    checkpoint_every: int = 200
    patience: int = 3
    batch_size: int = 1024  # global: split across replicas
    strategy: str = "default"
    cpu_devices: int = 1  # >1 splits the CPU into logical devices (multi-device code on CPU)
    model: AutoIntConfig = dataclasses.field(default_factory=AutoIntConfig)
    optimizer: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.layout not in TRAINABLE_LAYOUTS:
            raise ValueError(
                f"`--embedding` should be one of {TRAINABLE_LAYOUTS} for records. "
                f"Received: `{self.layout}` (collision-free tables need raw vocabularies: use "
                "`experiment.train_and_evaluate` on raw rows)"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"`--strategy` should be one of {STRATEGIES}. Received: `{self.strategy}`"
            )
        for name in ("steps", "eval_every", "checkpoint_every", "batch_size", "cpu_devices"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` should be >= 1. Received: `{getattr(self, name)}`")


def make_strategy(name: str, cpu_devices: int) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (every GPU; else the logical CPU devices) or
    `multi_worker` (MultiWorkerMirroredStrategy over the hosts in TF_CONFIG).

    Call before TensorFlow has run anything.
    """
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief (or worker 0 of a chief-less cluster) writes the run's files."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    chief_type = "chief" if "chief" in resolver.cluster_spec().as_dict() else "worker"
    return bool(resolver.task_type == chief_type and resolver.task_id == 0)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Workers split rows, not files: correct with fewer record files than workers."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def build_model(run: RunConfig) -> AutoInt:
    spec = run.feature_spec()
    plan = plan_budget(spec, run.budget_bytes)
    return build_autoint(build_embedding(run.layout, spec, plan), run.autoint_config())


class ExamplesPerSecond(keras.callbacks.Callback):
    """Adds `examples_per_second` of each evaluation period to the logs (and TensorBoard)."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self._batch_size = batch_size

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started, self._batches = time.perf_counter(), 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            seconds = time.perf_counter() - self._started
            logs["examples_per_second"] = self._batches * self._batch_size / seconds


class ResumeLogger(keras.callbacks.Callback):
    """Records the step training starts from (after `BackupAndRestore` restored its state)."""

    resumed_from_step = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.resumed_from_step = int(self.model.optimizer.iterations.numpy())
        if self.resumed_from_step:
            print(f"resuming from step {self.resumed_from_step}", flush=True)


def run_config(job: TrainJob, spec: FeatureSpec) -> RunConfig:
    budget = parse_budget(job.budget) if job.budget else spec.table.params * 4
    model_dir = Path(job.model_dir)
    if (model_dir / RUN_FILE).is_file():  # resuming: the contract must not have changed
        previous = RunConfig.load(model_dir).data_fingerprint
        if previous != spec.fingerprint:
            raise ValueError(
                f"{model_dir} was trained on records of spec {previous}; these records are "
                f"{spec.fingerprint}. Use a new --model-dir."
            )
    sized = spec.replace(table=plan_budget(spec, budget).table)
    return RunConfig(
        job.layout, budget, sized.to_dict(), dataclasses.asdict(job.model), spec.fingerprint
    )


def train(job: TrainJob) -> dict[str, Any]:
    """Runs (or resumes) the job; returns the final evaluation and the best step's metrics."""
    strategy = make_strategy(job.strategy, job.cpu_devices)
    chief = is_chief(strategy)
    data_spec = load_data_spec(job.data_dir)
    model_dir = Path(job.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # Non-chief workers take part in every collective save but write to a scratch directory.
    write_dir = model_dir if chief else Path(tempfile.mkdtemp(prefix="ue-worker-"))
    run = run_config(job, data_spec)
    if chief:
        run.save(model_dir)
    keras.utils.set_random_seed(job.optimizer.seed)
    train_data = training_dataset(
        data_spec, job.data_dir, "train", job.batch_size, shuffle=True, seed=job.optimizer.seed
    ).repeat()
    eval_data = training_dataset(data_spec, job.data_dir, "eval", 4096, shuffle=False)
    if job.strategy == "multi_worker":
        train_data, eval_data = shard_by_data(train_data), shard_by_data(eval_data)
    with strategy.scope():
        model = build_model(run)
        model(next(iter(eval_data)))  # build every variable before the optimizers split them
        # Across workers Keras would SUM every logged value, doubling the (already global)
        # metrics; "first" keeps them right, and `loss` then shows one worker's share (read
        # `logloss`, the metric, for the global value).
        model.compile(optimizer=make_optimizer(model, job.optimizer))
        if job.strategy == "multi_worker":
            model.distribute_reduction_method = "first"
    periods = math.ceil(job.steps / job.eval_every)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(model_dir / "backup"), save_freq=job.checkpoint_every),
        resume := ResumeLogger(),
        ExamplesPerSecond(job.batch_size),
        keras.callbacks.EarlyStopping(
            "val_auc", mode="max", patience=job.patience, restore_best_weights=True
        ),
        keras.callbacks.TensorBoard(str(write_dir / "logs"), update_freq=job.checkpoint_every),
    ]
    history = model.fit(
        train_data,
        steps_per_epoch=job.eval_every,
        epochs=periods,
        validation_data=eval_data,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    model.save_weights(str(write_dir / WEIGHTS))
    final = model.evaluate(eval_data, return_dict=True, verbose=0)
    summary = {
        "model_dir": str(model_dir),
        "steps": int(model.optimizer.iterations.numpy()),
        "resumed_from_step": resume.resumed_from_step,
        "eval": {k: float(v) for k, v in final.items()},
        "best_val_auc": max(history.history.get("val_auc", [math.nan])),
        "embedding_params": int(model.embedding.count_params()),
        "replicas": strategy.num_replicas_in_sync,
    }
    if chief:
        (model_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_trained(model_dir: str | Path) -> tuple[AutoInt, RunConfig]:
    """The best weights of a finished run, ready to export."""
    run = RunConfig.load(model_dir)
    model = build_model(run)
    spec = run.feature_spec()
    dummy = {f.name: _dummy_input(f.kind, f.probes) for f in spec.fields}
    model(dummy)
    model.load_weights(str(Path(model_dir) / WEIGHTS)).expect_partial()
    return model, run


def _dummy_input(kind: str, probes: int) -> tf.Tensor:
    if kind == "numeric":
        return tf.zeros([1], tf.float32)
    if kind == "multi_valued":
        return tf.RaggedTensor.from_row_lengths(tf.zeros([1, probes], tf.int64), [1])
    return tf.zeros([1, probes], tf.int64)
