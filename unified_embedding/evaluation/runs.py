"""Training runs as DataFrames: TensorBoard scalars, `train_summary.json` and eval JSON.

A run directory is what `ue train --model-dir M` writes: `M/train_summary.json` and TensorBoard
event files under `M/logs/{train,validation}/`. An eval JSON is what `ue evaluate` prints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import tensorflow as tf

SCALAR_COLUMNS = ["run", "split", "tag", "step", "value", "wall_time"]


def _scalar(value: Any) -> float | None:
    """The float of a summary value: v1 `simple_value` or a v2 scalar tensor; None otherwise."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        array = tf.make_ndarray(value.tensor)
        if array.size == 1 and array.dtype.kind in "fiu":
            return float(array.reshape(()))
    return None


def read_event_file(path: str | Path) -> list[dict[str, Any]]:
    """Every scalar of one event file as {tag, step, value, wall_time} records."""
    records = []
    for event in tf.compat.v1.train.summary_iterator(str(path)):
        for value in event.summary.value:
            number = _scalar(value)
            if number is not None:
                records.append(
                    {
                        "tag": value.tag,
                        "step": int(event.step),
                        "value": number,
                        "wall_time": float(event.wall_time),
                    }
                )
    return records


def read_scalars(log_dir: str | Path, run: str | None = None) -> pd.DataFrame:
    """All scalars under `log_dir` (e.g. `<model_dir>/logs`), one row per (file, tag, step).

    `split` is the event file's folder relative to `log_dir` (Keras writes `train` and
    `validation`); `run` defaults to the name of `log_dir`'s parent (the model dir).
    """
    root = Path(log_dir)
    name = run if run is not None else root.parent.name
    records = []
    for path in sorted(root.rglob("events.out.tfevents.*")):
        split = path.parent.relative_to(root).as_posix()
        records += [{"run": name, "split": split, **r} for r in read_event_file(path)]
    return pd.DataFrame.from_records(records, columns=SCALAR_COLUMNS)


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> one level with dotted keys: {"eval": {"auc": 1}} -> {"eval.auc": 1}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def read_summaries(model_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """One row per run: `run` (the folder name) and the flattened `train_summary.json`."""
    records = []
    for model_dir in model_dirs:
        path = Path(model_dir) / "train_summary.json"
        records.append({"run": Path(model_dir).name, **flatten(json.loads(path.read_text()))})
    return pd.DataFrame.from_records(records)


def read_eval_json(paths: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per {run name: path of `ue evaluate` JSON}, flattened, `run` first."""
    records = [
        {"run": run, **flatten(json.loads(Path(path).read_text()))} for run, path in paths.items()
    ]
    return pd.DataFrame.from_records(records)


def final_scalars(scalars: pd.DataFrame) -> pd.DataFrame:
    """The last step's value of every (run, split, tag), pivoted to one row per run with
    `<split>/<tag>` columns (e.g. `validation/epoch_auc`)."""
    if scalars.empty:
        return pd.DataFrame({"run": []})
    last = scalars.sort_values("step").groupby(["run", "split", "tag"]).tail(1)
    last = last.assign(column=last["split"] + "/" + last["tag"])
    table = last.pivot(index="run", columns="column", values="value")
    return table.reset_index().rename_axis(columns=None)
