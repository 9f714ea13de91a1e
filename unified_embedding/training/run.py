"""A training run's files in its model directory, and the model rebuilt from them.

run.json          RunConfig: layout, budget, the sized spec, AutoInt's config, the records'
                  spec fingerprint (a resumed run must read records of the same contract) and,
                  for a warm start, where it started from (`training.warm_start`)
embedding.json    the embedding layer's own `get_config`: what a reload builds (the budget
                  is never re-planned, so a change of `plan_budget` cannot move a trained
                  table's rows)
weights/best      the best weights (early stopping's)
logs/, backup/    TensorBoard logs; the checkpoints a stopped run resumes from
train_summary.json  written last: its presence is what makes a run finished (`is_finished`)
vocabulary.npz    runs written before embedding.json: a vocabulary layout's fingerprints

`ue train` into a finished run refuses (`FinishedRun`) unless `--overwrite`, which removes these
files (`artifacts.RUN_OUTPUTS`) and nothing else; an unfinished run resumes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tf_keras as keras

from unified_embedding.budget.plan import default_budget, parse_budget, plan_budget
from unified_embedding.budget.probes import distinct_counts, read_stats, with_probes
from unified_embedding.contract.artifacts import (
    EMBEDDING_FILE,
    RUN_FILE,
    RUN_OUTPUTS,
    SUMMARY_FILE,
    VOCABULARY_FILE,
    WEIGHTS,
)
from unified_embedding.contract.kinds import kind_of
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.models.autoint import AutoInt, AutoIntConfig, build_autoint, output_bias_for
from unified_embedding.training.experiment import build_embedding
from unified_embedding.training.job import TrainJob


class FinishedRun(ValueError):
    """`ue train` into a model directory whose run already finished, without `--overwrite`."""


def is_finished(model_dir: str | Path) -> bool:
    """A run is finished once its summary is written: the last file `train` writes, after the
    best weights. A run stopped before that (killed, preempted) is unfinished and resumes."""
    return (Path(model_dir) / SUMMARY_FILE).is_file()


def prepare_model_dir(model_dir: str | Path, overwrite: bool, remove: bool = True) -> None:
    """Refuses a finished run unless `overwrite`; with `overwrite` (and `remove`: the chief
    only), removes what a run writes (`artifacts.RUN_OUTPUTS`), leaving any other file."""
    root = Path(model_dir)
    if not overwrite:
        if is_finished(root):
            raise FinishedRun(
                f"`--model-dir {root}` holds a finished run ({SUMMARY_FILE}); "
                f"pass `--overwrite` to train it afresh, or use a new "
                f"--model-dir"
            )
        return
    if not remove:
        return
    for name in RUN_OUTPUTS:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild the trained model (written to `run.json`)."""

    layout: str
    budget_bytes: int
    spec: dict[str, Any]  # the data's spec with the table sized for the budget
    model: dict[str, Any]
    data_fingerprint: str  # of the records' spec.json
    warm_start: dict[str, Any] | None = None  # the source of a warm start (`WarmSource.record`)

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec.from_dict(self.spec)

    def autoint_config(self) -> AutoIntConfig:
        return AutoIntConfig(**self.model)

    def save(self, model_dir: Path) -> None:
        # Shallow: `asdict` would deep-copy the spec, millions of vocabulary values included.
        config = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        (model_dir / RUN_FILE).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def load(cls, model_dir: str | Path) -> RunConfig:
        return cls(**json.loads((Path(model_dir) / RUN_FILE).read_text()))


def run_config(
    job: TrainJob, spec: FeatureSpec, precision: str, label_rate: float | None = None
) -> RunConfig:
    """The run `job` asks for on records of `spec`; refuses a model directory trained on
    records of another contract. `label_rate` (of the train split) sets the output bias."""
    stats = read_stats(job.data_dir)
    check_resumable(Path(job.model_dir), spec, None)
    spec = with_probes(spec, job.probes, distinct_counts(stats), recorded=spec)
    # without a budget, the records' table (spec.json's), whatever the run's probes
    budget = parse_budget(job.budget) if job.budget else default_budget(spec)
    sized = spec.replace(table=plan_budget(spec, budget).table)
    model = dataclasses.replace(job.model, precision=precision)
    if label_rate is not None:
        model = dataclasses.replace(model, output_bias=output_bias_for(label_rate))
    return RunConfig(
        job.layout, budget, sized.to_dict(), dataclasses.asdict(model), spec.fingerprint
    )


def check_resumable(
    model_dir: Path, spec: FeatureSpec, warm_start: Mapping[str, Any] | None
) -> None:
    """Refuses to resume a run in `model_dir` on records of another contract, or started from
    another warm-start source (`warm_start`: `WarmSource.record`, None for a fresh start)."""
    if not (model_dir / RUN_FILE).is_file():
        return
    previous = RunConfig.load(model_dir)
    if previous.data_fingerprint != spec.fingerprint:
        raise ValueError(
            f"{model_dir} was trained on records of spec {previous.data_fingerprint}; these "
            f"records are {spec.fingerprint}. Use a new --model-dir."
        )
    started, asked = (previous.warm_start or {}).get("from"), (warm_start or {}).get("from")
    if started != asked:
        raise ValueError(
            f"{model_dir} holds a run started from `--warm-start-from {started}`; resume it "
            f"with the same source, or use a new --model-dir. Received: "
            f"`--warm-start-from {asked}`"
        )


def build_model(run: RunConfig, fingerprints: Mapping[str, np.ndarray] | None = None) -> AutoInt:
    """A new model of `run` (its embedding spending the run's budget). `fingerprints`: a
    vocabulary layout's vocabularies (`data.distinct_fingerprints`)."""
    spec = run.feature_spec()
    plan = plan_budget(spec, run.budget_bytes)
    embedding = build_embedding(run.layout, spec, plan, fingerprints=fingerprints)
    return build_autoint(embedding, run.autoint_config())


def save_embedding(embedding: keras.layers.Layer, model_dir: Path) -> None:
    """The layer's class and `get_config` (`keras.layers.serialize`), as JSON."""
    config = keras.layers.serialize(embedding)
    (model_dir / EMBEDDING_FILE).write_text(json.dumps(config, indent=1) + "\n")


def load_embedding(model_dir: str | Path) -> keras.layers.Layer | None:
    """The embedding layer of a run's `embedding.json`; None for runs written before it."""
    path = Path(model_dir) / EMBEDDING_FILE
    if not path.is_file():
        return None
    return keras.layers.deserialize(json.loads(path.read_text()))


def load_vocabulary(model_dir: str | Path) -> dict[str, np.ndarray] | None:
    path = Path(model_dir) / VOCABULARY_FILE
    if not path.is_file():
        return None
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


def rebuild_model(model_dir: str | Path, run: RunConfig) -> AutoInt:
    """A new model of the run in `model_dir` (weights not loaded): its embedding layer from its
    own saved config; only runs written before `embedding.json` rebuild it from the plan."""
    embedding = load_embedding(model_dir)
    if embedding is None:
        return build_model(run, load_vocabulary(model_dir))
    return build_autoint(embedding, run.autoint_config())


def load_trained(model_dir: str | Path) -> tuple[AutoInt, RunConfig]:
    """The best weights of a finished run, ready to export. The embedding layer comes from its
    own saved config; only runs written before `embedding.json` rebuild it from the plan."""
    for name in (RUN_FILE, f"{WEIGHTS}.index"):
        if not (Path(model_dir) / name).is_file():
            raise FileNotFoundError(
                f"no trained run in `--model-dir {model_dir}` ({name} is "
                f"missing): train one with `ue train`"
            )
    run = RunConfig.load(model_dir)
    model = rebuild_model(model_dir, run)
    spec = run.feature_spec()
    model({f.name: kind_of(f).dummy_input(f) for f in spec.fields})
    model.load_weights(str(Path(model_dir) / WEIGHTS)).expect_partial()
    return model, run
