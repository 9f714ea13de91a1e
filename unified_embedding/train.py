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
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from unified_embedding.budget import parse_budget, plan_budget
from unified_embedding.data import distinct_fingerprints, load_data_spec, training_dataset
from unified_embedding.experiment import TrainConfig, build_embedding, make_optimizer
from unified_embedding.kinds import kind_of
from unified_embedding.layouts import LAYOUTS, get_layout
from unified_embedding.model import PRECISIONS, AutoInt, AutoIntConfig, build_autoint
from unified_embedding.spec import FeatureSpec

STRATEGIES = ("default", "mirrored", "multi_worker", "parameter_server", "tpu")
EVAL_BATCH = 4096
MIN_SHARD_BYTES = 256 << 10  # variables smaller than this stay on one parameter server
RUN_FILE = "run.json"
WEIGHTS = "weights/best"
VOCABULARY_FILE = "vocabulary.npz"  # `needs_vocabulary` layouts: the train split's fingerprints


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
    eval_every: int | None = None  # default: one pass over the train split, at most 1,000
    checkpoint_every: int = 200
    patience: int = 3
    batch_size: int = 512  # global, split across replicas; beat 1024 on the Frappe sample
    strategy: str = "default"
    cpu_devices: int = 1  # >1 splits the CPU into logical devices (multi-device code on CPU)
    precision: str = "auto"  # or one of model.PRECISIONS; see `resolve_precision`
    model: AutoIntConfig = dataclasses.field(default_factory=AutoIntConfig)
    optimizer: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"`--embedding` should be one of {LAYOUTS}. Received: `{self.layout}`")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(
                f"`--precision` should be one of {('auto', *PRECISIONS)}. "
                f"Received: `{self.precision}`"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"`--strategy` should be one of {STRATEGIES}. Received: `{self.strategy}`"
            )
        for name in ("steps", "eval_every", "checkpoint_every", "batch_size", "cpu_devices"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"`{name}` should be >= 1. Received: `{getattr(self, name)}`")


def make_strategy(name: str, cpu_devices: int) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (every GPU; else the logical CPU devices),
    `multi_worker` (MultiWorkerMirroredStrategy over the hosts in TF_CONFIG),
    `parameter_server` (see `parameter_server_strategy`) or `tpu` (TPUStrategy on the TPU
    named by `TPU_NAME`, or the local one).

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
    if name == "parameter_server":
        return parameter_server_strategy()
    if name == "tpu":
        return tpu_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def parameter_server_strategy(
    resolver: tf.distribute.cluster_resolver.ClusterResolver | None = None,
) -> tf.distribute.experimental.ParameterServerStrategy:
    """ParameterServerStrategy whose partitioner shards the shared table across the `ps` tasks.

    The cluster comes from TF_CONFIG (`chief`, `worker` and `ps` tasks). Run `ue train` with the
    same arguments on every task: on `worker` and `ps` tasks it serves (`serve_task`) until
    killed; the chief coordinates. Each table of at least MIN_SHARD_BYTES is split row-wise
    into up to one shard per parameter server (a `ShardedVariable`); every step gathers only
    the rows its batch touches, and the sparse Adagrad update goes to the shards that own them.
    """
    resolver = resolver or tf.distribute.cluster_resolver.TFConfigClusterResolver()
    shards = len(resolver.cluster_spec().as_dict().get("ps", []))
    if not shards:
        raise ValueError("`--strategy parameter_server` needs `ps` tasks in TF_CONFIG's cluster")
    partitioner = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=MIN_SHARD_BYTES, max_shards=shards
    )
    return tf.distribute.experimental.ParameterServerStrategy(
        resolver, variable_partitioner=partitioner
    )


def serve_task() -> bool:
    """On a parameter-server cluster's `worker` or `ps` task: serve until killed (True).
    Elsewhere return False at once."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if resolver.task_type not in ("worker", "ps"):
        return False
    config = tf.compat.v1.ConfigProto()
    # Workers run one closure per scheduled step plus the coordinator's reads: with a single
    # inter-op thread a small host deadlocks.
    config.inter_op_parallelism_threads = max(4, (os.cpu_count() or 1) + 1)
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol=resolver.rpc_layer or "grpc",
        config=config,
        start=True,
    )
    print(f"serving {resolver.task_type}:{resolver.task_id}", flush=True)
    server.join()
    return True


def tpu_strategy() -> tf.distribute.TPUStrategy:
    """TPUStrategy on the TPU in `TPU_NAME` (a Cloud TPU VM's local TPU when unset)."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def has_native_bfloat16() -> bool:
    """TPUs, GPUs from Ampere (compute capability 8) on, CPUs with AVX-512 BF16 or AMX."""
    if tf.config.list_logical_devices("TPU"):
        return True
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = [tf.config.experimental.get_device_details(g) for g in gpus]
        return all(d.get("compute_capability", (0, 0)) >= (8, 0) for d in details)
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(cpuinfo.split()))


def resolve_precision(name: str) -> str:
    """`auto`: bfloat16 matrix work where the hardware has it natively, float32 elsewhere."""
    if name != "auto":
        return name
    return "mixed_bfloat16" if has_native_bfloat16() else "float32"


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


def build_model(run: RunConfig, fingerprints: Mapping[str, np.ndarray] | None = None) -> AutoInt:
    """`fingerprints`: the collision-free layout's vocabularies (`data.distinct_fingerprints`)."""
    spec = run.feature_spec()
    plan = plan_budget(spec, run.budget_bytes)
    embedding = build_embedding(run.layout, spec, plan, fingerprints=fingerprints)
    return build_autoint(embedding, run.autoint_config())


def save_vocabulary(fingerprints: Mapping[str, np.ndarray], model_dir: Path) -> None:
    np.savez_compressed(model_dir / VOCABULARY_FILE, **fingerprints)  # type: ignore[arg-type]


def load_vocabulary(model_dir: str | Path) -> dict[str, np.ndarray] | None:
    path = Path(model_dir) / VOCABULARY_FILE
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


class ExamplesPerSecond(keras.callbacks.Callback):
    """Adds `examples_per_second` of each evaluation period's training steps to the logs (and
    TensorBoard). Epoch-level hooks only: ParameterServerStrategy refuses batch-level ones."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self._batch_size = batch_size
        self._started = self._trained = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = self._trained = time.perf_counter()

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._trained = time.perf_counter()  # validation starts: the period's steps are done

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        ended = self._trained if self._trained > self._started else time.perf_counter()
        if logs is not None and self.params.get("steps"):
            logs["examples_per_second"] = (
                self.params["steps"] * self._batch_size / (ended - self._started)
            )


class ResumeLogger(keras.callbacks.Callback):
    """Records the step training starts from (after `BackupAndRestore` restored its state)."""

    resumed_from_step = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.resumed_from_step = int(self.model.optimizer.iterations.numpy())
        if self.resumed_from_step:
            print(f"resuming from step {self.resumed_from_step}", flush=True)


def run_config(job: TrainJob, spec: FeatureSpec, precision: str) -> RunConfig:
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
    model = dataclasses.replace(job.model, precision=precision)
    return RunConfig(
        job.layout, budget, sized.to_dict(), dataclasses.asdict(model), spec.fingerprint
    )


def train(job: TrainJob) -> dict[str, Any]:
    """Runs (or resumes) the job; returns the final evaluation and the best step's metrics."""
    if job.strategy == "parameter_server" and serve_task():
        return {}
    strategy = make_strategy(job.strategy, job.cpu_devices)
    chief = is_chief(strategy)
    data_spec = load_data_spec(job.data_dir)
    model_dir = Path(job.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # Non-chief workers take part in every collective save but write to a scratch directory.
    write_dir = model_dir if chief else Path(tempfile.mkdtemp(prefix="ue-worker-"))
    run = run_config(job, data_spec, resolve_precision(job.precision))
    if chief:
        run.save(model_dir)
    keras.utils.set_random_seed(job.optimizer.seed)
    inputs = fit_inputs(job, data_spec)
    # Every worker derives the same vocabularies from the same records; the chief keeps them.
    fingerprints = None
    if get_layout(job.layout).needs_vocabulary:
        fingerprints = distinct_fingerprints(data_spec, job.data_dir, "train")
        if chief:
            save_vocabulary(fingerprints, model_dir)
    with strategy.scope():
        model = build_model(run, fingerprints)
        model(inputs.first_batch)  # build every variable before the optimizers split them
        # Across workers Keras would SUM every logged value, doubling the (already global)
        # metrics; "first" keeps them right, and `loss` then shows one worker's share (read
        # `logloss`, the metric, for the global value).
        model.compile(optimizer=make_optimizer(model, job.optimizer, run.layout))
        if job.strategy == "multi_worker":
            model.distribute_reduction_method = "first"
    eval_every = job.eval_every or evaluation_period(job, data_spec)
    periods = math.ceil(job.steps / eval_every)
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
        inputs.train,
        steps_per_epoch=eval_every,
        epochs=periods,
        validation_data=inputs.evaluation,
        validation_steps=inputs.validation_steps,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    model.save_weights(str(write_dir / WEIGHTS))
    if job.strategy == "parameter_server":  # exact, on the coordinator (see `fit_inputs`)
        final = evaluate_weights(model_dir, job.data_dir)
    else:
        final = model.evaluate(inputs.evaluation, return_dict=True, verbose=0)
    summary = {
        "model_dir": str(model_dir),
        "steps": int(model.optimizer.iterations.numpy()),
        "resumed_from_step": resume.resumed_from_step,
        "eval": {k: float(v) for k, v in final.items()},
        "best_val_auc": max(history.history.get("val_auc", [math.nan])),
        "eval_every": eval_every,
        "embedding_params": int(model.embedding.count_params()),
        "replicas": strategy.num_replicas_in_sync,
        "table_shards": table_shards(model.embedding),
        "precision": run.model["precision"],
    }
    if chief:
        (model_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def evaluation_period(job: TrainJob, spec: FeatureSpec) -> int:
    """Steps between evaluations by default: one pass over the train rows, at most 1,000 steps
    (small data must not overfit for 1,000 steps before early stopping first looks)."""
    steps_per_pass = math.ceil(count_rows(spec, job.data_dir, "train") / job.batch_size)
    return max(1, min(1_000, steps_per_pass))


def table_shards(embedding: keras.layers.Layer) -> int:
    """Shards of the largest embedding table: > 1 when parameter servers split it."""
    tables = getattr(embedding, "tables", None) or [embedding.table]
    return max(len(getattr(t, "variables", [t])) for t in tables)


@dataclass(frozen=True)
class FitInputs:
    train: Any  # a tf.data.Dataset, or a DatasetCreator under parameter_server
    evaluation: Any
    validation_steps: int | None
    first_batch: dict[str, tf.Tensor]


def fit_inputs(job: TrainJob, spec: FeatureSpec) -> FitInputs:
    """The train and eval inputs `model.fit` takes under `job.strategy`.

    Under parameter_server each worker builds its own pipeline over its shard of the rows
    (`DatasetCreator`). Keras cannot evaluate TFRS task metrics exactly there, so the periodic
    `val_*` metrics come from about one pass over the eval rows spread across the workers (a
    faster worker may see some rows twice and another's last rows not at all); the final
    evaluation is exact (`evaluate_weights`).
    """
    seed = job.optimizer.seed

    static = job.strategy == "tpu"  # XLA on TPUs compiles one program per batch shape

    def train_data(shard: tuple[int, int] | None = None) -> tf.data.Dataset:
        return training_dataset(
            spec, job.data_dir, "train", job.batch_size, True, seed, drop_remainder=static,
            shard=shard,
        ).repeat()  # fmt: skip

    def eval_data(shard: tuple[int, int] | None = None) -> tf.data.Dataset:
        return training_dataset(
            spec, job.data_dir, "eval", EVAL_BATCH, shuffle=False, drop_remainder=static,
            shard=shard,
        )  # fmt: skip

    first_batch = next(iter(eval_data()))
    if job.strategy == "multi_worker":
        return FitInputs(shard_by_data(train_data()), shard_by_data(eval_data()), None, first_batch)
    if job.strategy != "parameter_server":
        return FitInputs(train_data(), eval_data(), None, first_batch)

    def per_worker(
        make: Callable[[tuple[int, int]], tf.data.Dataset],
    ) -> keras.utils.experimental.DatasetCreator:
        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            return make((context.num_input_pipelines, context.input_pipeline_id)).repeat()

        return keras.utils.experimental.DatasetCreator(dataset_fn)

    eval_rows = count_rows(spec, job.data_dir, "eval")
    steps = max(1, math.ceil(eval_rows / EVAL_BATCH))
    return FitInputs(per_worker(train_data), per_worker(eval_data), steps, first_batch)


def count_rows(spec: FeatureSpec, data_dir: str | Path, split: str) -> int:
    """Rows of a split: from the pipeline's stats.json, else by reading the records."""
    stats = Path(data_dir) / "stats.json"
    if stats.is_file():
        rows_by_split = json.loads(stats.read_text()).get("rows_by_split", {})
        if split in rows_by_split:
            return int(rows_by_split[split])
    data = training_dataset(spec, data_dir, split, EVAL_BATCH, shuffle=False)
    return int(data.reduce(0, lambda n, batch: n + tf.shape(batch["label"])[0]).numpy())


def evaluate_weights(model_dir: str | Path, data_dir: str | Path) -> dict[str, float]:
    """Exact eval-split metrics of the weights saved in `model_dir`, on this process."""
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model, run = load_trained(model_dir)
        model.compile()
    spec = load_data_spec(data_dir, expected_fingerprint=run.data_fingerprint)
    data = training_dataset(spec, data_dir, "eval", EVAL_BATCH, shuffle=False)
    return {k: float(v) for k, v in model.evaluate(data, return_dict=True, verbose=0).items()}


def load_trained(model_dir: str | Path) -> tuple[AutoInt, RunConfig]:
    """The best weights of a finished run, ready to export."""
    run = RunConfig.load(model_dir)
    model = build_model(run, load_vocabulary(model_dir))
    spec = run.feature_spec()
    dummy = {f.name: kind_of(f).dummy_input(f) for f in spec.fields}
    model(dummy)
    model.load_weights(str(Path(model_dir) / WEIGHTS)).expect_partial()
    return model, run
