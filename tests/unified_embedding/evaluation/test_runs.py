"""TensorBoard event files and run JSON read back into DataFrames: what was written comes back."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from unified_embedding.evaluation.runs import (
    final_scalars,
    flatten,
    read_eval_json,
    read_scalars,
    read_summaries,
)

# Hand-written logs of two runs:  run -> split -> tag -> [(step, value)]
LOGS = {
    "unified": {
        "train": {"epoch_loss": [(0, 0.6), (1, 0.5)]},
        "validation": {"epoch_auc": [(0, 0.70), (1, 0.75)]},
    },
    "per_feature": {
        "train": {"epoch_loss": [(0, 0.65), (1, 0.55)]},
        "validation": {"epoch_auc": [(0, 0.68), (1, 0.71)]},
    },
}


def write_run(model_dir: Path, splits: dict) -> None:
    for split, tags in splits.items():
        writer = tf.summary.create_file_writer(str(model_dir / "logs" / split))
        with writer.as_default():
            for tag, points in tags.items():
                for step, value in points:
                    tf.summary.scalar(tag, value, step=step)
            tf.summary.text("note", "not a scalar", step=0)  # skipped by the reader
        writer.close()


@pytest.fixture()
def run_dirs(tmp_path: Path) -> list[Path]:
    dirs = []
    for run, splits in LOGS.items():
        write_run(tmp_path / run, splits)
        summary = {"steps": 2, "eval": {"auc": splits["validation"]["epoch_auc"][-1][1]}}
        (tmp_path / run / "train_summary.json").write_text(json.dumps(summary))
        dirs.append(tmp_path / run)
    return dirs


def test_read_scalars_returns_every_written_value(run_dirs: list[Path]) -> None:
    for model_dir in run_dirs:
        frame = read_scalars(model_dir / "logs")
        expected = LOGS[model_dir.name]
        assert set(frame["split"]) == set(expected)
        assert (frame["run"] == model_dir.name).all()
        for (split, tag), group in frame.groupby(["split", "tag"]):
            points = sorted(zip(group["step"], group["value"], strict=True))
            steps, values = zip(*expected[split][tag], strict=True)
            assert [p[0] for p in points] == list(steps)
            np.testing.assert_allclose([p[1] for p in points], values, rtol=1e-6)


def test_final_scalars_pivots_last_step_per_run(run_dirs: list[Path]) -> None:
    import pandas as pd

    frame = pd.concat([read_scalars(d / "logs") for d in run_dirs])
    table = final_scalars(frame).set_index("run")
    assert table.loc["unified", "validation/epoch_auc"] == pytest.approx(0.75)
    assert table.loc["per_feature", "train/epoch_loss"] == pytest.approx(0.55)


def test_read_summaries_and_eval_json_flatten_nested_keys(
    run_dirs: list[Path], tmp_path: Path
) -> None:
    table = read_summaries(run_dirs).set_index("run")
    assert table.loc["unified", "eval.auc"] == pytest.approx(0.75)
    assert table.loc["per_feature", "steps"] == 2
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"auc": 0.7, "rows": 10}))
    evals = read_eval_json({"u": path})
    assert evals.to_dict("records") == [{"run": "u", "auc": 0.7, "rows": 10}]


def test_flatten_uses_dotted_keys() -> None:
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}}) == {"a": 1, "b.c": 2, "b.d.e": 3}


def test_read_scalars_of_an_empty_folder_is_an_empty_frame(tmp_path: Path) -> None:
    frame = read_scalars(tmp_path)
    assert frame.empty and list(frame.columns)[:3] == ["run", "split", "tag"]
