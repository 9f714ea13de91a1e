"""Warm start: a run that begins where another model ended (`ue train --warm-start-from`).

    ue train --data day2/ --model-dir runs/day2 --warm-start-from runs/day1      # a run
    ue train --data day2/ --model-dir runs/day2 --warm-start-from export/        # its newest
    ue train --data day2/ --model-dir runs/day2 --warm-start-from export/1767225600

The source is a finished run directory (an earlier `ue train --model-dir`) or an exported
version (an export base stands for its newest version: `exported.versions.locate`). Every weight
of its model is loaded: the shared table, the numeric and field embeddings, the attention, the
head and the DNN. A run directory also gives its optimizer's slots (Adagrad's accumulators,
Adam's moments); the step counters and learning rates start afresh, as this run's flags set them
(Adam's bias correction then damps the first steps rather than inflating them). An export holds
no optimizer: its weights start with a fresh one.

The source fixes the model. Its table (rows, width) and probes come from the source's spec; a
run directory also fixes the layout and AutoInt's architecture (run.json, embedding.json, the
collision-free layout's vocabularies included), while an export does not record them: `--embedding`
and `--dnn-units` must be those it was trained with, or its weights are refused. The records hold
fingerprints, which do not depend on the table, so records preprocessed with other table flags
continue the same model; their fields must match the source's (`check_compatible`).

Before the first step the model scores as its source does. A warm-started run that stops resumes
from its own checkpoints (`backup/`), never from the source again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf.trackable_object_graph_pb2 import TrackableObjectGraph

from unified_embedding.budget.plan import default_budget
from unified_embedding.contract.artifacts import BACKUP_DIR, RUN_FILE, WEIGHTS
from unified_embedding.contract.spec import FeatureSpec, FieldSpec
from unified_embedding.exported.model import read_spec
from unified_embedding.exported.versions import locate
from unified_embedding.models.autoint import AutoInt
from unified_embedding.models.config import output_bias_for
from unified_embedding.training.job import TrainJob
from unified_embedding.training.run import (
    RunConfig,
    build_model,
    check_resumable,
    is_finished,
    rebuild_model,
    run_config,
)

RUN, EXPORT = "run", "export"
# AutoInt's blocks that hold weights; `task` holds only metrics, which a warm start leaves out.
BLOCKS = ("embedding", "interaction", "head", "dnn")
EXPORTED_MODEL = "model"  # the trained model's name in an export (`exported.writer.ServingModule`)
EXPORT_HINT = "; an export needs the `--embedding` and `--dnn-units` it was trained with"


class IncompatibleSource(ValueError):
    """A warm-start source whose model cannot read the records, or whose weights do not fit."""


@dataclass(frozen=True)
class WarmSource:
    """The model a warm start begins from: `path` is a run directory (`kind` RUN) or a version
    folder (EXPORT, `version` its number); `spec` is the source model's spec (table, probes)."""

    given: str  # as `--warm-start-from` named it
    path: Path
    kind: str
    spec: FeatureSpec
    version: int | None = None

    @classmethod
    def locate(cls, given: str) -> WarmSource:
        """The source `given` names: a finished run directory, an export version or an export
        base (its newest version). Raises FileNotFoundError naming it otherwise."""
        path = Path(given)
        if (path / RUN_FILE).is_file():
            if not is_finished(path):
                raise FileNotFoundError(
                    f"`--warm-start-from {given}` is a run that has not finished (no summary "
                    f"yet): resume it first, or warm-start from a finished run or an export"
                )
            return cls(given, path, RUN, RunConfig.load(path).feature_spec())
        try:
            folder = locate(path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"`--warm-start-from {given}` is neither a run directory (the --model-dir of "
                f"`ue train`, with {RUN_FILE}) nor an export base or version"
            ) from None
        spec = read_spec(folder.path)
        if not spec.table.is_served_whole:
            raise IncompatibleSource(
                f"`--warm-start-from {given}` serves its table cut or quantized (width "
                f"{spec.table.served_width}, {spec.table.served_dtype}): that is not the trained "
                f"model. Warm-start from its run or from an export of the whole table"
            )
        return cls(given, Path(folder.path), EXPORT, spec, folder.version)

    @classmethod
    def own_run(cls, model_dir: Path, given: str) -> WarmSource:
        """A warm-started run resuming from its own backup: rebuilt from its own run.json and
        embedding.json, so the source is not read again (it may have moved meanwhile)."""
        return cls(given, model_dir, RUN, RunConfig.load(model_dir).feature_spec())

    def record(self) -> dict[str, Any]:
        """Where the run started from, as run.json and the summary keep it."""
        return {
            "from": self.given,
            "path": str(self.path.resolve()),
            "kind": self.kind,
            "version": self.version,
            "spec_fingerprint": self.spec.fingerprint,
        }

    def build(self, run: RunConfig) -> AutoInt:
        """A new model of the source's architecture (weights not loaded yet): a run's own
        embedding layer (`embedding.json`), or the layout `run` names for an export."""
        return rebuild_model(self.path, run) if self.kind == RUN else build_model(run)

    def restore(self, model: AutoInt) -> None:
        """Loads the source's weights into `model` (built and compiled), and a run's optimizer
        slots. Raises IncompatibleSource when they do not fit."""
        blocks = {n: getattr(model, n) for n in BLOCKS if getattr(model, n, None) is not None}
        _check_blocks_cover(model, blocks)
        if self.kind == RUN:
            prefix = str(self.path / WEIGHTS)
            self._read(tf.train.Checkpoint(**blocks), prefix)
            fresh = _fresh_optimizer_state(model.optimizer)
            self._read(tf.train.Checkpoint(optimizer=model.optimizer), prefix)
            for variable, value in fresh:  # the slots continue; counters and rates restart
                variable.assign(value)
        else:
            prefix = str(self.path / "variables" / "variables")
            _check_export_blocks(prefix, blocks, self.given)
            root = tf.train.Checkpoint(**{EXPORTED_MODEL: tf.train.Checkpoint(**blocks)})
            self._read(root, prefix)

    def _read(self, root: tf.train.Checkpoint, prefix: str) -> None:
        try:
            status = root.read(prefix)
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            hint = EXPORT_HINT if self.kind == EXPORT else ""
            raise IncompatibleSource(
                f"the weights of `--warm-start-from {self.given}` do not fit this model "
                f"({_first_line(e)}){hint}"
            ) from None
        status.expect_partial()  # the source's metrics (and an export's signatures) stay out


def planned_run(
    job: TrainJob, records: FeatureSpec, precision: str, label_rate: float | None
) -> tuple[RunConfig, WarmSource | None]:
    """The run `job` asks for on records of `records`, and its warm-start source (None without
    `--warm-start-from`). A warm start takes the source's table, probes, layout and
    architecture; `label_rate` (of the new train split) is recorded as the initial output bias
    that the source's weights replace, and the final re-fit uses the new rows."""
    if job.warm_start_from is None:
        return run_config(job, records, precision, label_rate), None
    model_dir = Path(job.model_dir)
    if resumes(model_dir) and (model_dir / RUN_FILE).is_file():
        check_resumable(model_dir, records, {"from": job.warm_start_from})
        return RunConfig.load(model_dir), WarmSource.own_run(model_dir, job.warm_start_from)
    source = WarmSource.locate(job.warm_start_from)
    spec = continued_spec(source.spec, records, source.given)
    record = source.record()
    check_resumable(model_dir, records, record)
    if source.kind == RUN:
        base = RunConfig.load(source.path)
        layout, budget, model = base.layout, base.budget_bytes, base.autoint_config()
    else:
        layout, budget, model = job.layout, default_budget(spec), job.model
    model = dataclasses.replace(model, precision=precision)
    if label_rate is not None:
        model = dataclasses.replace(model, output_bias=output_bias_for(label_rate))
    config = RunConfig(
        layout, budget, spec.to_dict(), dataclasses.asdict(model), records.fingerprint, record
    )
    return config, source


def resumes(model_dir: str | Path) -> bool:
    """True when `model_dir` holds a backup to resume from (`keras.callbacks.BackupAndRestore`
    restores it as `fit` begins): a warm start must not load its source over it."""
    backup = Path(model_dir) / BACKUP_DIR
    return backup.is_dir() and any(backup.rglob("checkpoint"))


def continued_spec(source: FeatureSpec, records: FeatureSpec, given: str) -> FeatureSpec:
    """The spec a warm-started run trains: the records' (input format, label) with the source's
    fields, probes and table. Raises IncompatibleSource naming the first difference."""
    check_compatible(source, records, given)
    return records.replace(
        fields=source.fields, table=source.table, embedding_dim=source.embedding_dim
    )


def check_compatible(source: FeatureSpec, records: FeatureSpec, given: str) -> None:
    """Raises IncompatibleSource unless the records hold what the source model reads: the same
    fields (their names salt the hashes), kinds, transforms, separators and vocabularies, at
    least the source's probes, and the same embedding width."""
    problem = _difference(source, records)
    if problem is not None:
        raise IncompatibleSource(
            f"`--warm-start-from {given}` does not fit the records of `--data`: {problem}"
        )


def _difference(source: FeatureSpec, records: FeatureSpec) -> str | None:
    ours, theirs = set(source.field_names), set(records.field_names)
    for name in source.field_names:
        if name not in theirs:
            return f"field `{name}` is in the source model, not in the records"
    for name in records.field_names:
        if name not in ours:
            return f"field `{name}` is in the records, not in the source model"
    for field in source.fields:
        problem = _field_difference(field, records.field(field.name))
        if problem is not None:
            return problem
    if source.embedding_dim != records.embedding_dim:
        return (
            f"`embedding_dim` is {source.embedding_dim} in the source model, "
            f"{records.embedding_dim} in the records"
        )
    return None


def _field_difference(ours: FieldSpec, theirs: FieldSpec) -> str | None:
    where = f"field `{ours.name}`"
    if ours.kind != theirs.kind:
        return f"{where} is {ours.kind} in the source model, {theirs.kind} in the records"
    for attribute in ("transform", "separator"):
        mine, other = getattr(ours, attribute), getattr(theirs, attribute)
        if mine != other:
            return f"{where} has {attribute} `{mine}` in the source model, `{other}` in the records"
    if ours.vocabulary != theirs.vocabulary:
        return f"{where} has another vocabulary in the source model than in the records"
    if ours.is_hashed and theirs.probes < ours.probes:
        return (
            f"{where} uses {ours.probes} probes in the source model; the records hold "
            f"{theirs.probes} (`ue preprocess --probes`)"
        )
    return None


def _check_blocks_cover(model: AutoInt, blocks: dict[str, Any]) -> None:
    """Every weight of `model` outside its task's metrics lives in one of `blocks`: a block
    added to AutoInt must be added to BLOCKS, or a warm start would leave it random."""
    covered = {id(w) for block in blocks.values() for w in block.weights}
    metrics = {id(w) for w in model.task.weights}
    left = [w.name for w in model.weights if id(w) not in covered | metrics]
    if left:
        raise AssertionError(f"weights outside {BLOCKS}: {left}")


def _check_export_blocks(prefix: str, blocks: dict[str, Any], given: str) -> None:
    """Refuses an export holding a block this model lacks (its weights would be dropped)."""
    reader = tf.train.load_checkpoint(prefix)
    graph = TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    root = {c.local_name: c.node_id for c in graph.nodes[0].children}
    held = {c.local_name for c in graph.nodes[root[EXPORTED_MODEL]].children}
    extra = sorted((held & set(BLOCKS)) - set(blocks))
    if extra:
        raise IncompatibleSource(
            f"`--warm-start-from {given}` holds weights of {extra} that this model lacks"
            f"{EXPORT_HINT}"
        )


def _fresh_optimizer_state(optimizer: Any) -> list[tuple[tf.Variable, np.ndarray]]:
    """Each (sub-)optimizer's step counter and learning rate as this run set them."""
    each = getattr(optimizer, "optimizers", [optimizer])
    return [(v, v.numpy()) for o in each for v in (o.iterations, o.learning_rate)]


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
