"""Records -> train -> export -> SavedModel: reload equality, skew parity, resume, evaluate."""

import dataclasses
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines.preprocess import run as preprocess
from ue.cli import main
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.hashing import MISSING, fingerprint
from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import SpecError
from unified_embedding.evaluation.evaluate import evaluate, raw_batches
from unified_embedding.exported.versions import MAX_VERSION, scan_versions
from unified_embedding.exported.writer import export
from unified_embedding.models.config import AutoIntConfig
from unified_embedding.rows.reader import parse_bytes
from unified_embedding.rows.records import read_blocks
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.data import distinct_fingerprints, load_data_spec, training_dataset
from unified_embedding.training.loop import TrainJob, load_trained, train
from unified_embedding.training.run import FinishedRun

ROWS = 4000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("trained")
    data = generate(ROWS, SyntheticConfig(seed=5, weighted_top_k=3, signal_scale=2.0))
    raw_file = tmp / "rows.tsv"
    raw_file.write_bytes(data.to_tsv_bytes())
    prep = tmp / "prep"
    preprocess(
        [
            "--input",
            str(raw_file),
            "--schema",
            "criteo",
            "--output",
            str(prep),
            "--eval-fraction",
            "0.2",
        ]
    )
    job = TrainJob(
        str(prep),
        str(tmp / "model"),
        budget="200KB",
        steps=60,
        eval_every=30,
        checkpoint_every=20,
        batch_size=128,
        model=AutoIntConfig(),
    )
    summary = train(job)
    model, run_config = load_trained(job.model_dir)
    version = export(model, run_config.feature_spec(), tmp / "export")
    return {
        "tmp": tmp,
        "raw_file": raw_file,
        "prep": prep,
        "summary": summary,
        "model": model,
        "spec": run_config.feature_spec(),
        "version": version,
    }


def raw_inputs(spec, path: Path) -> dict:  # type: ignore[no-untyped-def]
    rows = parse_bytes(criteo(), path.read_bytes())
    (batch,) = list(raw_batches(spec, rows, batch_size=len(rows)))
    return batch


def test_training_ran_and_evaluated(trained: dict) -> None:
    summary = trained["summary"]
    assert summary["steps"] == 60 and summary["resumed_from_step"] == 0
    assert 0.5 < summary["eval"]["auc"] <= 1.0
    assert summary["embedding_params"] <= 200_000 // 4
    assert list((Path(summary["model_dir"]) / "logs").rglob("events.out.tfevents.*"))


def test_reloaded_saved_model_scores_equal_in_memory_model(trained: dict) -> None:
    spec, raw = trained["spec"], raw_inputs(trained["spec"], trained["raw_file"])
    # As a graph, like the export: eager bfloat16 rounds between ops a graph fuses (~1e-4).
    probabilities = tf.function(trained["model"].probabilities)
    expected = probabilities(encode_features(spec, raw)).numpy()[:, 0]
    loaded = tf.saved_model.load(str(trained["version"]))
    got = loaded.signatures["serving_default"](**raw)["probability"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    categorical = tf.stack([raw[f.name] for f in spec.categorical_fields], 1)
    numeric = tf.stack([raw[f.name] for f in spec.numeric_fields], 1)
    packed = loaded.signatures["packed"](categorical=categorical, numeric=numeric)
    np.testing.assert_allclose(packed["probability"].numpy(), got, rtol=1e-6)
    attention = loaded.signatures["attention"](**{k: v[:3] for k, v in raw.items()})["attention"]
    assert attention.shape == (3, 3, 2, 39, 39)
    np.testing.assert_allclose(attention.numpy().sum(-1), 1.0, rtol=1e-5)
    assert (trained["version"] / "assets" / "spec.json").is_file()


def test_warmup_requests_replay_against_the_export(trained: dict) -> None:
    """`assets.extra/tf_serving_warmup_requests` holds PredictionLogs TF Serving can replay."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = trained["version"] / "assets.extra" / "tf_serving_warmup_requests"
    loaded = tf.saved_model.load(str(trained["version"]))
    sizes = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert set(request.inputs) == {f.name for f in trained["spec"].fields}
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        scores = loaded.signatures["serving_default"](**inputs)["probability"].numpy()
        assert np.all((scores > 0) & (scores < 1))
        sizes.append(len(scores))
    assert sizes == [1, 64]


def test_skew_parity_pipeline_records_and_raw_features(trained: dict) -> None:
    """Same raw rows: in-graph ids equal the pipeline's, and (records -> model) scores equal
    (raw features -> SavedModel) scores."""
    spec, raw = trained["spec"], raw_inputs(trained["spec"], trained["raw_file"])
    loaded = tf.saved_model.load(str(trained["version"]))
    ids = loaded.signatures["encode"](**raw)
    served = loaded.signatures["serving_default"](**raw)["probability"].numpy()

    def key(columns: dict, i: int) -> tuple:  # NaN bit patterns differ: compare as None
        return tuple(
            None
            if f.kind == "numeric" and np.isnan(columns[f.name][i])
            else np.asarray(columns[f.name][i]).tobytes()
            for f in spec.fields
        )

    from_raw = {key(ids, i): served[i] for i in range(ROWS)}
    records = {}
    for batch in read_blocks(spec, str(trained["prep"] / "*.tfrecord.gz")).batch(1000):
        scores = trained["model"].probabilities(batch).numpy()[:, 0]
        records.update({key(batch, i): scores[i] for i in range(len(scores))})
    assert from_raw.keys() == records.keys()  # the same ids, row for row
    np.testing.assert_allclose(
        [records[k] for k in from_raw], list(from_raw.values()), rtol=1e-5, atol=1e-6
    )


def test_examples_and_ids_signatures_agree(trained: dict) -> None:
    spec, raw = trained["spec"], raw_inputs(trained["spec"], trained["raw_file"])
    raw = {k: v[:20] for k, v in raw.items()}
    loaded = tf.saved_model.load(str(trained["version"]))
    expected = loaded.signatures["serving_default"](**raw)["probability"].numpy()
    examples = []
    for i in range(20):
        feature = {}
        for f in spec.fields:
            value = raw[f.name][i].numpy()
            if f.kind == "numeric":
                if not np.isnan(value):  # absent = missing
                    feature[f.name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
            else:
                feature[f.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        examples.append(
            tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        )
    got = loaded.signatures["from_examples"](examples=tf.constant(examples))["probability"]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    from_ids = loaded.signatures["from_ids"](**encode_features(spec, raw))["probability"]
    np.testing.assert_allclose(from_ids.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_evaluate_reports_metrics_and_calibration(trained: dict, capsys) -> None:  # type: ignore[no-untyped-def]
    report = evaluate(trained["version"], trained["raw_file"], "criteo")
    assert report["rows"] == ROWS and 0.5 < report["auc"] <= 1.0 and report["logloss"] > 0
    assert report["calibration"] == pytest.approx(
        report["mean_predicted_ctr"] / report["observed_ctr"]
    )
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(trained["version"]),
                "--input",
                str(trained["raw_file"]),
                "--schema",
                "criteo",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["rows"] == ROWS


def test_records_of_another_contract_are_refused(trained: dict) -> None:
    with pytest.raises(SpecError, match="written under spec"):
        load_data_spec(trained["prep"], expected_fingerprint="0" * 16)
    spec = load_data_spec(trained["prep"])
    batch = next(iter(training_dataset(spec, trained["prep"], "eval", 8, shuffle=False)))
    assert batch["C1"].shape == (8, 2) and batch["label"].shape == (8, 1)


def test_resume_after_sigkill_continues_from_the_checkpoint(trained: dict) -> None:
    model_dir = trained["tmp"] / "killed"
    command = [
        sys.executable,
        "-m",
        "ue.cli",
        "train",
        "--data",
        str(trained["prep"]),
        "--model-dir",
        str(model_dir),
        "--steps",
        "400",
        "--eval-every",
        "200",
        "--checkpoint-every",
        "20",
        "--batch-size",
        "64",
        "--budget",
        "0.2MB",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = model_dir / "backup" / "chief" / "checkpoint"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # let a few more checkpoints land
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert checkpoint.exists(), "no checkpoint was written before the kill"
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["resumed_from_step"] >= 20 and summary["resumed_from_step"] % 20 == 0
    assert summary["steps"] == 400


def test_mirrored_training_on_two_logical_cpus_matches_single_device(trained: dict) -> None:
    """The same model code under MirroredStrategy (2 logical CPU devices, a new process since
    devices are fixed at start-up) trains to an AUC close to the single-device run."""
    common = [
        "--data",
        str(trained["prep"]),
        "--steps",
        "60",
        "--eval-every",
        "30",
        "--checkpoint-every",
        "20",
        "--batch-size",
        "128",
        "--budget",
        "0.2MB",
        "--dnn-units",
    ]  # the fixture's plain AutoInt
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ue.cli",
            "train",
            *common,
            "--model-dir",
            str(trained["tmp"] / "mirrored"),
            "--strategy",
            "mirrored",
            "--cpu-devices",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    mirrored = json.loads(out.stdout.strip().splitlines()[-1])
    assert mirrored["replicas"] == 2 and mirrored["steps"] == 60
    single = trained["summary"]["eval"]["auc"]
    assert abs(mirrored["eval"]["auc"] - single) < 0.05, (mirrored["eval"]["auc"], single)


def test_multi_worker_training_on_two_loopback_processes(trained: dict) -> None:
    """MultiWorkerMirroredStrategy: two worker processes (TF_CONFIG on free localhost ports)
    train together; the chief writes the run, and its AUC is close to the single device's."""
    workers = [f"localhost:{free_port()}", f"localhost:{free_port()}"]
    model_dir = trained["tmp"] / "multi_worker"
    command = [
        sys.executable,
        "-m",
        "ue.cli",
        "train",
        "--data",
        str(trained["prep"]),
        "--model-dir",
        str(model_dir),
        "--strategy",
        "multi_worker",
        "--steps",
        "60",
        "--eval-every",
        "30",
        "--checkpoint-every",
        "20",
        "--batch-size",
        "128",
        "--budget",
        "0.2MB",
        "--dnn-units",
    ]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": json.dumps(config)}
        processes.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outputs = [p.communicate(timeout=400) for p in processes]
    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
    chief = json.loads(outputs[0][0].strip().splitlines()[-1])
    assert chief["replicas"] == 2 and chief["steps"] == 60
    assert abs(chief["eval"]["auc"] - trained["summary"]["eval"]["auc"]) < 0.05
    assert json.loads((model_dir / "train_summary.json").read_text()) == chief
    assert (model_dir / "run.json").is_file()


def test_parameter_server_training_shards_the_table_on_a_loopback_cluster(trained: dict) -> None:
    """ParameterServerStrategy: a chief, two workers and two parameter servers (one process
    each, TF_CONFIG on free localhost ports, the same `ue train` command everywhere). The
    shared table is split across both servers, training finishes, and the weights export."""
    ports = [free_port() for _ in range(5)]
    cluster = {
        "chief": [f"localhost:{ports[0]}"],
        "worker": [f"localhost:{p}" for p in ports[1:3]],
        "ps": [f"localhost:{p}" for p in ports[3:]],
    }
    model_dir = trained["tmp"] / "parameter_server"
    command = [
        sys.executable,
        "-m",
        "ue.cli",
        "train",
        "--data",
        str(trained["prep"]),
        "--model-dir",
        str(model_dir),
        "--strategy",
        "parameter_server",
        "--steps",
        "60",
        "--eval-every",
        "30",
        "--checkpoint-every",
        "20",
        "--batch-size",
        "128",
        "--budget",
        "1MB",
        "--dnn-units",
    ]  # the fixture's plain AutoInt

    def start(task: str, index: int) -> subprocess.Popen:
        config = {"cluster": cluster, "task": {"type": task, "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": json.dumps(config)}
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    servers = [start(task, i) for task in ("worker", "ps") for i in range(2)]
    try:
        chief = start("chief", 0)
        out, err = chief.communicate(timeout=500)
        assert chief.returncode == 0, err[-2000:]
        assert all(s.poll() is None for s in servers), "a worker or ps task exited early"
    finally:
        for server in servers:
            server.kill()
            server.wait()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["steps"] == 60 and summary["table_shards"] == 2
    # It learns. Asynchronous steps land in the order the coordinator hands them out, so the
    # AUC is not the synchronous run's (on 800 eval rows, 0.061 apart once under load)
    single = trained["summary"]["eval"]["auc"]
    assert summary["eval"]["auc"] > max(0.55, single - 0.1), (summary["eval"]["auc"], single)
    model, run = load_trained(model_dir)  # sharded checkpoint -> one local table
    assert model.embedding.tables[0].shape[0] == run.feature_spec().table.rows


def test_collisionless_from_records_has_a_row_per_seen_value(trained: dict) -> None:
    """`--embedding collisionless` learns vocabularies from the train split's fingerprints, and
    the export maps raw values to the same rows in-graph (unseen values to the OOV row)."""
    job = TrainJob(
        str(trained["prep"]),
        str(trained["tmp"] / "collisionless"),
        layout="collisionless",
        steps=20,
        checkpoint_every=20,
        batch_size=128,
    )
    summary = train(job)
    spec = load_data_spec(trained["prep"])
    seen = distinct_fingerprints(spec, trained["prep"], "train")
    missing = {
        f.name: fingerprint(tf.constant([MISSING]), f.name, 1).numpy()[0, 0]
        for f in spec.categorical_fields
    }
    rows = sum(len(set(seen[f.name]) | {missing[f.name]}) + 1 for f in spec.categorical_fields)
    numeric = 2 * len(spec.numeric_fields) * spec.embedding_dim
    assert summary["embedding_params"] == rows * spec.embedding_dim + numeric
    train_rows = json.loads((trained["prep"] / "stats.json").read_text())["rows_by_split"]["train"]
    assert summary["eval_every"] == math.ceil(train_rows / 128)  # one pass over the train rows
    model, run = load_trained(job.model_dir)
    version = export(model, run.feature_spec(), trained["tmp"] / "collisionless_export")
    raw = raw_inputs(spec, trained["raw_file"])
    raw = {k: v[:50] for k, v in raw.items()}
    expected = tf.function(model.probabilities)(encode_features(spec, raw)).numpy()[:, 0]
    served = tf.saved_model.load(str(version)).signatures["serving_default"](**raw)
    np.testing.assert_allclose(served["probability"].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_reload_builds_the_embedding_from_its_saved_config(trained: dict, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """`load_trained` rebuilds the layer from `embedding.json` (its own `get_config`), never by
    planning the budget again: a changed `plan_budget` cannot move a trained table's rows."""
    import unified_embedding.training.run as run_module

    model_dir = Path(trained["summary"]["model_dir"])
    saved = json.loads((model_dir / run_module.EMBEDDING_FILE).read_text())
    assert saved["config"] == json.loads(json.dumps(trained["model"].embedding.get_config()))

    def no_planning(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_trained re-planned the budget")

    monkeypatch.setattr(run_module, "plan_budget", no_planning)
    model, _ = load_trained(model_dir)
    raw = raw_inputs(trained["spec"], trained["raw_file"])
    features = encode_features(trained["spec"], {k: v[:50] for k, v in raw.items()})
    np.testing.assert_array_equal(
        model.probabilities(features).numpy(), trained["model"].probabilities(features).numpy()
    )


def test_a_finished_run_is_refused_and_overwrite_starts_it_afresh(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rerunning `ue train` into a finished run once retrained it silently from step 0."""
    model_dir = tmp_path / "run"
    flags = [
        "--data",
        str(trained["prep"]),
        "--model-dir",
        str(model_dir),
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        "--batch-size",
        "128",
        "--budget",
        "50KB",
        "--dnn-units",
    ]
    job = TrainJob(
        str(trained["prep"]),
        str(model_dir),
        budget="50KB",
        steps=2,
        eval_every=2,
        checkpoint_every=2,
        batch_size=128,
    )
    train(job)
    (model_dir / "notes.txt").write_text("not the run's: --overwrite keeps it")
    (model_dir / "logs" / "stale").write_text("the run's folder: --overwrite removes it")
    weights = (model_dir / "weights" / "best.index").read_bytes()
    with pytest.raises(FinishedRun, match="pass `--overwrite`"):
        train(job)
    assert main(["train", *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"ue train: error: `--model-dir {model_dir}` holds a finished run")
    assert len(error.splitlines()) == 1 and "--overwrite" in error
    assert (model_dir / "weights" / "best.index").read_bytes() == weights  # untouched

    assert main(["train", *flags, "--steps", "4", "--overwrite"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 4 and summary["resumed_from_step"] == 0
    assert (model_dir / "notes.txt").is_file() and not (model_dir / "logs" / "stale").exists()

    (model_dir / "train_summary.json").unlink()  # stopped before its end: not finished
    assert train(dataclasses.replace(job, steps=4))["steps"] == 4


def test_export_takes_the_last_int64_version_then_refuses_in_one_line(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder named with the largest int64 once made `ue export` write 2**63, a version
    the server ignores."""
    base = tmp_path / "export"
    (base / str(MAX_VERSION - 1)).mkdir(parents=True)
    version = export(trained["model"], trained["spec"], base)
    assert version == base / str(MAX_VERSION)
    assert scan_versions(base) == ([MAX_VERSION - 1, MAX_VERSION], [])  # what a server loads
    assert (
        main(["export", "--model-dir", trained["summary"]["model_dir"], "--export-base", str(base)])
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert error == (
        f"ue export: error: no version is left under `--export-base {base}`: "
        f"`{version}` is the largest version int64 holds ({MAX_VERSION}); move "
        f"it away to export a new one"
    )
    assert sorted(p.name for p in base.iterdir()) == [str(MAX_VERSION - 1), str(MAX_VERSION)]


def test_a_failed_export_leaves_no_staging_folder(
    trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_save(module: object, path: str, signatures: object = None) -> None:
        (Path(path) / "saved_model.pb").write_bytes(b"half written")
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        export(trained["model"], trained["spec"], tmp_path / "export")
    assert list((tmp_path / "export").iterdir()) == []


def test_train_names_a_truncated_shard_and_records_of_another_spec(
    trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both once gave a raw TensorFlow traceback that did not name the file."""
    flags = ["--steps", "2", "--eval-every", "2", "--batch-size", "128", "--budget", "50KB"]
    truncated = Path(shutil.copytree(trained["prep"], tmp_path / "truncated"))
    (shard,) = truncated.glob("train-*.tfrecord.gz")
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert (
        main(["train", "--data", str(truncated), "--model-dir", str(tmp_path / "m1"), *flags]) == 2
    )
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert error.startswith(f"ue train: error: `{shard}` is truncated or corrupt")

    other = Path(shutil.copytree(trained["prep"], tmp_path / "other"))
    spec = load_data_spec(other)
    fields = [
        dataclasses.replace(f, transform="identity") if f.kind == "numeric" else f
        for f in spec.fields
    ]  # the records hold log1p values
    spec.replace(fields=tuple(fields)).save(other / "spec.json")
    assert main(["train", "--data", str(other), "--model-dir", str(tmp_path / "m2"), *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert re.match(
        r"ue train: error: `.*/other/(train|eval)-00000-of-00001.tfrecord.gz` does "
        r"not hold records of this spec.json \(records written under another "
        r"spec.json",
        error,
    ), error
