"""The train and eval inputs of `model.fit` under each strategy, over the pipeline's records."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding.contract.artifacts import STATS_FILE
from unified_embedding.contract.spec import FeatureSpec, SpecError
from unified_embedding.training.data import training_dataset
from unified_embedding.training.eval_rows import held_out, kept_for_training
from unified_embedding.training.job import TrainJob
from unified_embedding.training.strategies import shard_by_data

EVAL_BATCH = 4096


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
    train_data = functools.partial(_train_data, job, spec)
    eval_data = functools.partial(_eval_data, job, spec)
    first_batch = next(iter(eval_data()))
    if job.strategy == "multi_worker":
        return FitInputs(shard_by_data(train_data()), shard_by_data(eval_data()), None, first_batch)
    if job.strategy != "parameter_server":
        return FitInputs(train_data(), eval_data(), None, first_batch)
    eval_rows = count_rows(spec, job.data_dir, "eval")
    held_rows = job.eval_share * count_rows(spec, job.data_dir, "train") if job.eval_share else 0
    steps = max(1, math.ceil((eval_rows + held_rows) / EVAL_BATCH))
    return FitInputs(_per_worker(train_data), _per_worker(eval_data), steps, first_batch)


def _train_data(
    job: TrainJob, spec: FeatureSpec, shard: tuple[int, int] | None = None
) -> tf.data.Dataset:
    return training_dataset(
        spec,
        job.data_dir,
        "train",
        job.batch_size,
        True,
        job.optimizer.seed,
        drop_remainder=_static_shapes(job),
        shard=shard,
        keep=kept_for_training(job.eval_share),
    ).repeat()


def _eval_data(
    job: TrainJob, spec: FeatureSpec, shard: tuple[int, int] | None = None
) -> tf.data.Dataset:
    """The eval split, then the train rows `--eval-share` holds out."""
    static = _static_shapes(job)
    data = training_dataset(
        spec, job.data_dir, "eval", EVAL_BATCH, shuffle=False, drop_remainder=static, shard=shard
    )
    if not job.eval_share:
        return data
    held = training_dataset(
        spec,
        job.data_dir,
        "train",
        EVAL_BATCH,
        shuffle=False,
        drop_remainder=static,
        shard=shard,
        keep=lambda block: held_out(block, job.eval_share),
    )
    return data.concatenate(held)


def _static_shapes(job: TrainJob) -> bool:
    return job.strategy == "tpu"  # XLA on TPUs compiles one program per batch shape


def _per_worker(
    make: Callable[[tuple[int, int]], tf.data.Dataset],
) -> keras.utils.experimental.DatasetCreator:
    """Each parameter-server worker builds its own pipeline over its shard of the rows."""

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return make((context.num_input_pipelines, context.input_pipeline_id)).repeat()

    return keras.utils.experimental.DatasetCreator(dataset_fn)


def check_rows(spec: FeatureSpec, data_dir: str | Path) -> None:
    """Raises SpecError when the train or eval split holds no row (fit would fail later on an
    empty iterator, with no word of which split)."""
    for split in ("train", "eval"):
        first = training_dataset(spec, data_dir, split, 1, shuffle=False).take(1)
        if next(iter(first), None) is None:
            raise SpecError(
                f"the `{split}` split has no rows (every row dead-lettered, or `ue preprocess "
                f"--eval-fraction` 0 or 1?). Received: `data={data_dir}`"
            )


def count_rows(spec: FeatureSpec, data_dir: str | Path, split: str) -> int:
    """Rows of a split: from the pipeline's stats.json, else by reading the records."""
    stats = Path(data_dir) / STATS_FILE
    if stats.is_file():
        rows_by_split = json.loads(stats.read_text()).get("rows_by_split", {})
        if split in rows_by_split:
            return int(rows_by_split[split])
    data = training_dataset(spec, data_dir, split, EVAL_BATCH, shuffle=False)
    return int(data.reduce(0, lambda n, batch: n + tf.shape(batch["label"])[0]).numpy())
