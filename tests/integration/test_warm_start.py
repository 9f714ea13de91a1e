"""`ue train --warm-start-from`: a run directory or an export continues on a new day's records.

day 1 (label rate 0.25, table from --budget 200KB) ──train──► source run ──export──► version
day 2 (label rate 0.10, data-sized table)         ──train --warm-start-from──► warm run
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from pipelines.preprocess import run as preprocess
from ue.cli import main
from unified_embedding.contract.hashing import probe_key
from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.exported.writer import export
from unified_embedding.models.autoint import AutoInt
from unified_embedding.models.config import AutoIntConfig
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.data import load_data_spec, training_dataset
from unified_embedding.training.experiment import make_optimizer
from unified_embedding.training.loop import TrainJob, load_trained, train
from unified_embedding.training.precision import resolve_precision
from unified_embedding.training.run import RunConfig
from unified_embedding.training.warm_start import (
    IncompatibleSource,
    WarmSource,
    check_compatible,
    planned_run,
)

ROWS = 2000
# `ue train` flags of `_job`'s small runs (the default model: AutoInt+)
FLAGS = [
    "--eval-every",
    "10",
    "--checkpoint-every",
    "5",
    "--batch-size",
    "128",
    "--eval-share",
    "0",
]


def _job(data: Path, model_dir: Path, **changes: object) -> TrainJob:
    job = TrainJob(str(data), str(model_dir), eval_every=10, checkpoint_every=5, batch_size=128)
    return dataclasses.replace(job, eval_share=0.0, **changes)  # type: ignore[arg-type]


def _day(tmp: Path, day: int, label_rate: float, *flags: str) -> Path:
    """Day `day`'s ROWS rows: one planted model for both days, its base rate `label_rate`."""
    config = SyntheticConfig(seed=5, weighted_top_k=3, signal_scale=2.0, label_rate=label_rate)
    lines = generate(2 * ROWS, config).to_tsv_bytes().splitlines(keepends=True)
    raw = tmp / f"day{day}.tsv"
    raw.write_bytes(b"".join(lines[(day - 1) * ROWS : day * ROWS]))
    out = tmp / f"prep{day}"
    preprocess(["--input", str(raw), "--output", str(out), "--eval-fraction", "0.2", *flags])
    return out


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("warm")
    day1 = _day(tmp, 1, 0.25, "--schema", "criteo", "--budget", "200KB")
    day2 = _day(tmp, 2, 0.10, "--schema", "criteo")  # a table sized from the data
    source = _job(day1, tmp / "day1", steps=30)
    train(source)
    model, run = load_trained(source.model_dir)
    version = export(model, run.feature_spec(), tmp / "export")
    return {
        "tmp": tmp,
        "day1": day1,
        "day2": day2,
        "source": Path(source.model_dir),
        "version": version,
        "source_model": model,
    }


def _batch(data: Path, split: str = "eval", rows: int = 512) -> dict:
    spec = load_data_spec(data)
    batch = next(iter(training_dataset(spec, data, split, rows, shuffle=False)))
    return {k: v for k, v in batch.items() if k != "label"}


def _probabilities(model: AutoInt, features: dict) -> np.ndarray:
    return tf.function(model.probabilities)(features).numpy()[:, 0]


def _warm_model(job: TrainJob) -> tuple[AutoInt, RunConfig]:
    """What `train` builds before its first step: the source's model, restored."""
    records = load_data_spec(job.data_dir)
    run, warm = planned_run(job, records, resolve_precision(job.precision), 0.1)
    assert warm is not None
    model = warm.build(run)
    model(_batch(Path(job.data_dir), rows=8))
    model.compile(optimizer=make_optimizer(model, job.optimizer, run.layout))
    warm.restore(model)
    return model, run


def test_tables_differ_between_the_days(days: dict) -> None:
    """The premise of the continuation test: day 2's own table is not day 1's."""
    assert load_data_spec(days["day1"]).table != load_data_spec(days["day2"]).table


@pytest.mark.parametrize("kind", ["run", "version", "base"])
def test_warm_start_scores_as_its_source_before_any_step(days: dict, kind: str) -> None:
    """Day 2's rows (read with day 2's data-sized spec) score as the source scores them."""
    source = {"run": days["source"], "version": days["version"], "base": days["version"].parent}
    job = _job(days["day2"], days["tmp"] / f"unused-{kind}", warm_start_from=str(source[kind]))
    model, run = _warm_model(job)
    features = _batch(days["day2"])
    expected = _probabilities(days["source_model"], features)
    np.testing.assert_allclose(_probabilities(model, features), expected, rtol=0, atol=1e-6)
    assert run.feature_spec().table == load_data_spec(days["day1"]).table  # the source's
    assert run.warm_start is not None
    assert run.warm_start["kind"] == ("run" if kind == "run" else "export")
    if kind != "run":
        assert run.warm_start["version"] == int(days["version"].name)  # a base: its newest


def test_a_run_directory_gives_its_optimizer_slots(days: dict) -> None:
    """The table's Adagrad accumulators continue: after one step, the rows the batch did not
    touch hold the source's accumulators; step counters and learning rates restart."""
    job = _job(days["day2"], days["tmp"] / "unused-slots", warm_start_from=str(days["source"]))
    model, _ = _warm_model(job)
    adagrad = model.optimizer.optimizers[0]
    assert int(adagrad.iterations.numpy()) == 0
    assert float(adagrad.learning_rate.numpy()) == pytest.approx(job.optimizer.table_learning_rate)
    spec = load_data_spec(days["day2"])
    one = training_dataset(spec, days["day2"], "train", 64, shuffle=False).take(1)
    model.fit(one, verbose=0)
    reader = tf.train.load_checkpoint(str(days["source"] / "weights" / "best"))
    (table,) = model.embedding.tables
    slots = {tuple(v.shape): v.numpy() for v in adagrad.variables[1:]}
    shapes = reader.get_variable_to_shape_map()
    (source_slot,) = [
        reader.get_tensor(k)
        for k, shape in shapes.items()
        if k.startswith("optimizer/Optimizer0/_variables/") and tuple(shape) == tuple(table.shape)
    ]
    moved = ~np.isclose(source_slot, source_slot.flat[0]).all(axis=1)  # rows the source trained
    now = slots[tuple(table.shape)]
    assert moved.sum() > 100
    assert np.isclose(now[moved], source_slot[moved]).all(axis=1).mean() > 0.7


@pytest.fixture(scope="module")
def warm_run(days: dict) -> dict:
    job = _job(days["day2"], days["tmp"] / "day2", steps=20, warm_start_from=str(days["source"]))
    return {"job": job, "summary": train(job)}


def test_warm_started_run_continues_the_source_on_the_new_records(
    days: dict, warm_run: dict
) -> None:
    summary, job = warm_run["summary"], warm_run["job"]
    assert summary["steps"] == 20 and summary["resumed_from_step"] == 0
    run = RunConfig.load(job.model_dir)
    source = RunConfig.load(days["source"])
    assert run.feature_spec().table == source.feature_spec().table
    assert run.layout == source.layout and run.budget_bytes == source.budget_bytes
    assert run.data_fingerprint == load_data_spec(days["day2"]).fingerprint
    assert run.warm_start == summary["warm_start"]
    assert run.warm_start["from"] == str(days["source"])
    assert run.warm_start["spec_fingerprint"] == source.feature_spec().fingerprint
    assert 0.5 < summary["eval"]["auc"] <= 1.0


def test_the_output_bias_fits_the_new_label_rate(days: dict, warm_run: dict) -> None:
    """Day 1 clicks at 0.25, day 2 at 0.10: the warm-started model's mean prediction over day
    2's train rows is day 2's rate, where its source predicted day 1's."""
    model, _ = load_trained(warm_run["job"].model_dir)
    spec = load_data_spec(days["day2"])
    scores, labels = [], []
    for batch in training_dataset(spec, days["day2"], "train", 4096, shuffle=False):
        labels.append(batch.pop("label").numpy().ravel())
        scores.append(_probabilities(model, batch))
    rate = float(np.concatenate(labels).mean())
    assert rate == pytest.approx(warm_run["summary"]["train_label_rate"])
    assert float(np.concatenate(scores).mean()) == pytest.approx(rate, abs=0.01)
    before = _probabilities(days["source_model"], _batch(days["day2"], "train", 2000)).mean()
    assert before > rate + 0.07  # the source still predicted day 1's level


class _Killed(Exception):
    pass


class _KillAt(keras.callbacks.Callback):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if int(self.model.optimizer.iterations.numpy()) >= self.step:
            raise _Killed


def test_a_stopped_warm_start_resumes_from_its_own_backup(days: dict) -> None:
    """Killed after its first backups, the run resumes from them, even with its source gone."""
    source = Path(shutil.copytree(days["source"], days["tmp"] / "source-copy"))
    job = _job(days["day2"], days["tmp"] / "resumed", steps=20, warm_start_from=str(source))
    with pytest.raises(_Killed):
        train(job, extra_callbacks=[_KillAt(12)])
    shutil.rmtree(source)
    summary = train(job)
    assert summary["resumed_from_step"] == 10 and summary["steps"] == 20
    assert summary["warm_start"]["from"] == str(source)
    (Path(job.model_dir) / "train_summary.json").unlink()  # unfinished again
    other = dataclasses.replace(job, warm_start_from=str(days["source"]))
    with pytest.raises(ValueError, match="holds a run started from"):
        train(other)


def test_mirrored_warm_start_on_two_logical_cpus(days: dict) -> None:
    command = [sys.executable, "-m", "ue.cli", "train", "--data", str(days["day2"])]
    command += ["--model-dir", str(days["tmp"] / "mirrored"), "--steps", "10", *FLAGS]
    command += ["--warm-start-from", str(days["version"])]
    command += ["--strategy", "mirrored", "--cpu-devices", "2"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["replicas"] == 2 and summary["steps"] == 10
    assert summary["warm_start"]["kind"] == "export"
    assert 0.5 < summary["eval"]["auc"] <= 1.0


def _spec(**changes: object) -> FeatureSpec:
    spec = criteo()
    fields = {f.name: f for f in spec.fields}
    for name, change in changes.items():
        fields[name] = dataclasses.replace(fields[name], **change)  # type: ignore[arg-type]
    return spec.replace(fields=tuple(fields.values()))


DIFFERENCES = [
    ({"C3": {"kind": "numeric"}}, "field `C3` is categorical in the source model, numeric in"),
    ({"I2": {"transform": "identity"}}, "field `I2` has transform `log1p` in the source model"),
    ({"C5": {"probes": 1}}, "field `C5` uses 2 probes in the source model; the records hold 1"),
    ({"C7": {"vocabulary": ("a", "b")}}, "field `C7` has another vocabulary"),
]


@pytest.mark.parametrize(("changes", "message"), DIFFERENCES)
def test_records_that_differ_from_the_source_are_refused_naming_it(
    changes: dict, message: str
) -> None:
    with pytest.raises(IncompatibleSource, match=r"^`--warm-start-from src` does not fit") as e:
        check_compatible(criteo(), _spec(**changes), "src")
    assert message in str(e.value) and len(str(e.value).splitlines()) == 1


def test_a_renamed_field_is_refused_its_salts_differ() -> None:
    """Hash keys derive from field names: a renamed field hashes its values elsewhere."""
    source = criteo()
    renamed = [dataclasses.replace(f, name="C3x") if f.name == "C3" else f for f in source.fields]
    columns = tuple("C3x" if c == "C3" else c for c in source.input_format.columns)
    records = source.replace(
        fields=tuple(renamed),
        input_format=dataclasses.replace(source.input_format, columns=columns),
    )
    assert probe_key("C3", 0) != probe_key("C3x", 0)
    with pytest.raises(IncompatibleSource, match="field `C3` is in the source model, not in the"):
        check_compatible(source, records, "src")
    fewer = source.replace(fields=tuple(f for f in source.fields if f.name != "C3"))
    with pytest.raises(IncompatibleSource, match="field `C3x` is in the records, not in the"):
        check_compatible(fewer, records, "src")


def test_cli_refuses_in_one_line(days: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """--budget with a warm start; a missing source; records whose field kind differs; records
    whose spec.json names another hash function (another key for every field)."""
    base = ["train", "--data", str(days["day2"]), "--model-dir", str(days["tmp"] / "refused")]
    cases = [
        (["--budget", "1MB"], "`--budget` cannot be combined with `--warm-start-from`"),
        (["--probes", "1"], "`--probes` cannot be combined with `--warm-start-from`"),
    ]
    for flags, message in cases:
        assert main([*base, "--warm-start-from", str(days["source"]), *flags]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and message in error, error
    assert main([*base, "--warm-start-from", str(days["tmp"] / "nowhere")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no run directory or export there" in error, error

    schema = days["tmp"] / "i1-categorical.json"
    _spec(I1={"kind": "categorical", "transform": "identity"}).save(schema)
    rows = days["tmp"] / "day2.tsv"
    other = days["tmp"] / "prep-other"
    preprocess(["--input", str(rows), "--schema", str(schema), "--output", str(other)])
    flags = ["--warm-start-from", str(days["source"]), "--steps", "2"]
    assert (
        main(["train", "--data", str(other), "--model-dir", str(days["tmp"] / "r2"), *flags]) == 2
    )
    error = capsys.readouterr().err.strip()
    assert error.endswith("field `I1` is numeric in the source model, categorical in the records")
    assert len(error.splitlines()) == 1

    hashed = Path(shutil.copytree(days["day2"], days["tmp"] / "prep-hash"))
    spec = json.loads((hashed / "spec.json").read_text())
    spec.pop("fingerprint")
    spec["hash_function"] = "another-hash"
    (hashed / "spec.json").write_text(json.dumps(spec))
    assert (
        main(["train", "--data", str(hashed), "--model-dir", str(days["tmp"] / "r3"), *flags]) == 2
    )
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "another-hash" in error, error


def test_warm_source_refuses_an_unfinished_run(days: dict, tmp_path: Path) -> None:
    unfinished = Path(shutil.copytree(days["source"], tmp_path / "unfinished"))
    (unfinished / "train_summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="has not finished"):
        WarmSource.locate(str(unfinished))


def test_an_export_with_other_architecture_flags_is_refused(days: dict) -> None:
    """An export does not record its architecture: plain AutoInt (`--dnn-units` without a
    value) cannot take the weights of the source's AutoInt+ DNN, nor another DNN width."""
    for model in (AutoIntConfig(), AutoIntConfig(dnn_units=(8,))):
        job = _job(days["day2"], days["tmp"] / "unused-arch", warm_start_from=str(days["version"]))
        with pytest.raises(IncompatibleSource, match="the `--embedding` and `--dnn-units` it was"):
            _warm_model(dataclasses.replace(job, model=model))
