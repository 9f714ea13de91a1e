"""`ue train`: AutoInt on the pipeline's records, with evaluation, early stopping and resume.

    ue train --data prep/ --model-dir runs/m1 --embedding unified --budget 1MB --steps 20000

A run killed at any point (even SIGKILL) and started again with the same command continues
from its last checkpoint (`keras.callbacks.BackupAndRestore`, every `--checkpoint-every`
steps). A finished run (`training.run.is_finished`) is refused unless `--overwrite`, which
starts it afresh. Evaluation on the eval split every `--eval-every` steps drives early stopping
(on AUC, or log loss: `--early-stop-on`); TensorBoard logs go to `<model-dir>/logs`.
Evaluations report AUC (within `auc_bound`, `callbacks.refine_auc`), log loss, calibration and
ECE; the output bias starts at the logit of the train split's label rate and, once training
stops, is re-fit on the train rows (`training/recalibrate.py`); `--eval-share` (by default
enough for about 200 positives) evaluates on more rows (`training/eval_rows.py`). The best
weights, `run.json` and the embedding layer's config are what `ue export` reads
(`training.run.load_trained`). `--warm-start-from` begins from another run's or an export's
model instead of random weights (`training/warm_start.py`).

This module is the fit loop; its parts live in `unified_embedding/training/`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import tensorflow as tf
import tf_keras as keras

from unified_embedding.budget.layouts import get_layout
from unified_embedding.contract.artifacts import BACKUP_DIR, LOGS_DIR, SUMMARY_FILE, WEIGHTS
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.models.autoint import AutoInt
from unified_embedding.training.callbacks import (
    DecayOnPlateau,
    ExamplesPerSecond,
    Progress,
    RefineAUC,
    ResumeLogger,
    monitor_of,
    refine_auc,
    summaries_restored_on_error,
)
from unified_embedding.training.data import (
    distinct_fingerprints,
    load_data_spec,
    naming_bad_records,
    training_dataset,
)
from unified_embedding.training.eval_rows import (
    evaluated_positives,
    held_out,
    kept_for_training,
    resolve_eval_share,
    split_counts,
    warn_if_few_positives,
)
from unified_embedding.training.experiment import make_optimizer
from unified_embedding.training.inputs import (
    EVAL_BATCH,
    FitInputs,
    check_rows,
    count_rows,
    fit_inputs,
)
from unified_embedding.training.job import TrainJob
from unified_embedding.training.nested_eval import nested_aucs
from unified_embedding.training.precision import resolve_precision
from unified_embedding.training.recalibrate import refit_output_bias
from unified_embedding.training.run import (
    RunConfig,
    build_model,
    load_trained,
    prepare_model_dir,
    save_embedding,
)
from unified_embedding.training.strategies import is_chief, make_strategy, serve_task
from unified_embedding.training.warm_start import WarmSource, planned_run, resumes

__all__ = ["TrainJob", "load_trained", "train"]


def train(
    job: TrainJob,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
    progress: bool = False,
) -> dict[str, Any]:
    """Runs (or resumes) the job; returns the final evaluation and the best step's metrics.
    `extra_callbacks` run after `fit`'s own (e.g. a benchmark's timer); `progress` prints one
    line per evaluation on stderr (`ue train`). A finished run is refused unless
    `job.overwrite`; unreadable records raise `RecordsError` naming the file."""
    if job.strategy == "parameter_server" and serve_task():
        return {}
    strategy = make_strategy(job.strategy, job.cpu_devices)
    chief = is_chief(strategy)
    prepare_model_dir(job.model_dir, job.overwrite, remove=chief)  # before anything is written
    data_spec = load_data_spec(job.data_dir)
    with naming_bad_records(data_spec, job.data_dir):
        return _train(job, strategy, chief, data_spec, extra_callbacks, progress)


def _train(
    job: TrainJob,
    strategy: tf.distribute.Strategy,
    chief: bool,
    data_spec: FeatureSpec,
    extra_callbacks: Sequence[keras.callbacks.Callback],
    progress: bool,
) -> dict[str, Any]:
    check_rows(data_spec, job.data_dir)
    model_dir = Path(job.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    # Non-chief workers take part in every collective save but write to a scratch directory.
    write_dir = model_dir if chief else Path(tempfile.mkdtemp(prefix="ue-worker-"))
    train_rows = split_counts(data_spec, job.data_dir, "train")
    label_rate = train_rows.label_rate if job.bias_from_label_rate else None
    # First: a warm-start source that does not fit the records is refused before any output.
    run, warm = planned_run(job, data_spec, resolve_precision(job.precision), label_rate)
    eval_rows = split_counts(data_spec, job.data_dir, "eval")
    share, share_rule = resolve_eval_share(job.eval_share, train_rows, eval_rows)
    job = dataclasses.replace(job, eval_share=share)  # the rows every part holds out
    eval_positives = evaluated_positives(train_rows, eval_rows, share)
    if chief:
        warn_if_few_positives(eval_positives, share)
        if progress:
            print(f"evaluating on ~{eval_positives:,.0f} positives ({share_rule})", file=sys.stderr)
    if chief:
        run.save(model_dir)
    keras.utils.set_random_seed(job.optimizer.seed)
    inputs = fit_inputs(job, data_spec)
    model = _compiled_model(
        job, run, data_spec, strategy, inputs, model_dir if chief else None, warm
    )
    eval_every = job.eval_every or evaluation_period(job, data_spec)
    history, resume = _fit(job, model, inputs, eval_every, write_dir, extra_callbacks, progress)
    shift, final = _finish(job, model, inputs, data_spec, write_dir)
    summary = {
        "model_dir": str(model_dir),
        "steps": int(model.optimizer.iterations.numpy()),
        "resumed_from_step": resume.resumed_from_step,
        **_history_summary(final, history),
        "output_bias_shift": shift,
        "eval_share": job.eval_share,
        "eval_share_rule": share_rule,
        "early_stop_on": job.early_stop_on,
        "eval_positives": eval_positives,
        "train_label_rate": train_rows.label_rate,
        "eval_every": eval_every,
        "embedding_params": int(model.embedding.count_params()),
        "replicas": strategy.num_replicas_in_sync,
        "table_shards": table_shards(model.embedding),
        "precision": run.model["precision"],
        "warm_start": run.warm_start,
    }
    if chief:
        # Last: its presence marks the run finished (`training.run.is_finished`).
        (model_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _compiled_model(
    job: TrainJob,
    run: RunConfig,
    data_spec: FeatureSpec,
    strategy: tf.distribute.Strategy,
    inputs: FitInputs,
    embedding_dir: Path | None,
    warm: WarmSource | None = None,
) -> AutoInt:
    """The model built and compiled under `strategy`; its embedding layer's config saved to
    `embedding_dir` (the chief's model dir: what `load_trained` rebuilds the layer from). A
    warm start loads its source's weights, unless the run resumes from its own backup."""
    # Every worker derives the same vocabularies from the same records; the chief keeps them.
    fingerprints = None
    if warm is None and get_layout(run.layout).needs_vocabulary:
        fingerprints = distinct_fingerprints(data_spec, job.data_dir, "train")
    with strategy.scope():
        model = build_model(run, fingerprints) if warm is None else warm.build(run)
        model(inputs.first_batch)  # build every variable before the optimizers split them
        if embedding_dir is not None:
            save_embedding(model.embedding, embedding_dir)
        # Across workers Keras would SUM every logged value, doubling the (already global)
        # metrics; "first" keeps them right, and `loss` then shows one worker's share (read
        # `logloss`, the metric, for the global value).
        model.compile(optimizer=make_optimizer(model, job.optimizer, run.layout))
        if job.strategy == "multi_worker":
            model.distribute_reduction_method = "first"
        if warm is not None and not resumes(job.model_dir):
            warm.restore(model)
    return model


def _fit(
    job: TrainJob,
    model: AutoInt,
    inputs: FitInputs,
    eval_every: int,
    write_dir: Path,
    extra_callbacks: Sequence[keras.callbacks.Callback],
    progress: bool,
) -> tuple[keras.callbacks.History, ResumeLogger]:
    """`model.fit` in evaluation periods (Keras's epochs) with backups, the bounded validation
    AUC, early stopping and the plateau decay on `--early-stop-on`, TensorBoard logs and, with
    `progress`, a line per evaluation."""
    model_dir = Path(job.model_dir)
    monitor, mode = monitor_of(job.early_stop_on)
    # Under parameter_server the periodic `val_*` are approximate anyway (see `fit_inputs`).
    refine = job.strategy != "parameter_server"
    callbacks = [
        keras.callbacks.BackupAndRestore(
            str(model_dir / BACKUP_DIR), save_freq=job.checkpoint_every
        ),
        *([RefineAUC(inputs.evaluation, inputs.validation_steps)] if refine else []),
        resume := ResumeLogger(),
        ExamplesPerSecond(job.batch_size),
        *([Progress(job.steps, job.patience, job.early_stop_on)] if progress else []),
        keras.callbacks.EarlyStopping(
            monitor, mode=mode, patience=job.patience, restore_best_weights=True
        ),
        DecayOnPlateau(job.plateau_decay, monitor, mode),
        keras.callbacks.TensorBoard(str(write_dir / LOGS_DIR), update_freq=job.checkpoint_every),
        *extra_callbacks,
    ]
    with summaries_restored_on_error():
        history = model.fit(
            inputs.train,
            steps_per_epoch=eval_every,
            epochs=math.ceil(job.steps / eval_every),
            validation_data=inputs.evaluation,
            validation_steps=inputs.validation_steps,
            callbacks=callbacks,
            verbose=0,  # Keras counts epochs; `Progress` counts steps and evaluations
        )
    return history, resume


def _finish(
    job: TrainJob, model: AutoInt, inputs: FitInputs, data_spec: FeatureSpec, write_dir: Path
) -> tuple[float, dict[str, Any]]:
    """Re-fits the output bias on the train rows, saves the weights and evaluates them:
    (the bias's shift, the final metrics)."""
    shift = 0.0
    if job.refit_output_bias and job.strategy != "tpu":  # see training/recalibrate.py
        keep = kept_for_training(job.eval_share)
        rows = training_dataset(data_spec, job.data_dir, "train", EVAL_BATCH, False, keep=keep)
        shift = refit_output_bias(model, rows)
    model.save_weights(str(write_dir / WEIGHTS))
    if job.strategy == "parameter_server":  # exact, on the coordinator (see `fit_inputs`)
        return shift, evaluate_weights(job.model_dir, job.data_dir, job.eval_share or 0.0)
    final = model.evaluate(inputs.evaluation, return_dict=True, verbose=0)
    refine_auc(model, inputs.evaluation, None, final)
    if job.strategy in ("default", "mirrored"):  # one process sees every evaluated row
        final.update(
            {f"auc_at_width_{w}": a for w, a in nested_aucs(model, inputs.evaluation).items()}
        )
    return shift, final


def _history_summary(final: dict[str, Any], history: keras.callbacks.History) -> dict[str, Any]:
    """The final evaluation, the best validation AUC and every evaluation's metrics."""
    return {
        "eval": {k: float(v) for k, v in final.items()},
        "best_val_auc": max(history.history.get("val_auc", [math.nan])),
        "best_val_logloss": min(history.history.get("val_logloss", [math.nan])),
        "val_history": {
            k: [float(x) for x in v] for k, v in history.history.items() if k.startswith("val_")
        },
    }


def evaluation_period(job: TrainJob, spec: FeatureSpec) -> int:
    """Steps between evaluations by default: one pass over the train rows, at most 1,000 steps
    (small data must not overfit for 1,000 steps before early stopping first looks)."""
    steps_per_pass = math.ceil(count_rows(spec, job.data_dir, "train") / job.batch_size)
    return max(1, min(1_000, steps_per_pass))


def table_shards(embedding: keras.layers.Layer) -> int:
    """Shards of the largest embedding table: > 1 when parameter servers split it."""
    tables = getattr(embedding, "tables", None) or [embedding.table]
    return max(len(getattr(t, "variables", [t])) for t in tables)


def evaluate_weights(
    model_dir: str | Path, data_dir: str | Path, eval_share: float = 0.0
) -> dict[str, float]:
    """Exact metrics of the weights saved in `model_dir` over the evaluated rows (the eval
    split and the train rows `eval_share` holds out), on this process."""
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model, run = load_trained(model_dir)
        model.compile()
    spec = load_data_spec(data_dir, expected_fingerprint=run.data_fingerprint)
    data = training_dataset(spec, data_dir, "eval", EVAL_BATCH, shuffle=False)
    if eval_share:
        held = partial(held_out, share=eval_share)
        data = data.concatenate(
            training_dataset(spec, data_dir, "train", EVAL_BATCH, shuffle=False, keep=held)
        )
    with naming_bad_records(spec, data_dir):
        metrics = model.evaluate(data, return_dict=True, verbose=0)
        refine_auc(model, data, None, metrics)
    return {k: float(v) for k, v in metrics.items()}
