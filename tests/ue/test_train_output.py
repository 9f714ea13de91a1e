"""`ue train`'s output: progress on stderr, counted in steps and evaluations; on stdout only the
JSON result, so `ue train ... > out.json` writes a JSON file."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipelines.preprocess import run as preprocess
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.callbacks import Progress


def test_progress_counts_steps_and_evaluations(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(total_steps=1000, patience=3)
    progress.set_params({"steps": 400, "epochs": 3})
    progress.set_model(SimpleNamespace(stop_training=True))  # type: ignore[arg-type]
    logs = {
        "loss": 0.5,
        "val_auc": 0.71,
        "val_logloss": 0.45,
        "val_loss": 0.46,
        "val_total_loss": 0.46,
        "examples_per_second": 12345.6,
    }
    progress.on_epoch_end(1, logs)
    progress.on_epoch_end(2, {"loss": 0.4})
    progress.on_train_end()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "step 800/1000 (eval 2): loss 0.5000 | eval auc 0.7100 logloss 0.4500 | 12,346 examples/s",
        "step 1000/1000 (eval 3): loss 0.4000",
        "stopped early at step 1000: no AUC gain in the last 3 evaluations; keeping the best "
        "weights",
    ]


def test_ue_train_writes_only_json_to_stdout(tmp_path: Path) -> None:
    rows = tmp_path / "rows.tsv"
    rows.write_bytes(generate(600, SyntheticConfig(seed=2)).to_tsv_bytes())
    preprocess(
        [
            "--input",
            str(rows),
            "--schema",
            "criteo",
            "--output",
            str(tmp_path / "prep"),
            "--eval-fraction",
            "0.3",
            "--budget",
            "50KB",
        ]
    )
    out_file = tmp_path / "out.json"
    command = [
        sys.executable,
        "-m",
        "ue.cli",
        "train",
        "--data",
        str(tmp_path / "prep"),
        "--model-dir",
        str(tmp_path / "m"),
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--batch-size",
        "64",
        "--dnn-units",
        "8",
        "--patience",
        "5",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with out_file.open("w") as out:
        done = subprocess.run(
            command, env=env, stdout=out, stderr=subprocess.PIPE, text=True, timeout=300
        )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out_file.read_text())  # the whole file is one JSON document
    assert summary["steps"] == 4 and summary["model_dir"] == str(tmp_path / "m")
    lines = done.stderr.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("step ")] == [
        "step 2/4 (eval 1)",
        "step 4/4 (eval 2)",
    ]
    assert not any("Epoch" in line for line in lines), lines
