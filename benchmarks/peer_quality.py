"""Held-out quality of DeepCTR's AutoInt(+) and of ours, trained and tested on the same rows.

`quality.py` compares our test AUC with the peers' published figures, which come from the
peers' own splits. This runs the peer on `quality.py`'s split (seed 14: 80% train, 10%
validation, 10% test of each shared sample) next to ours, seed by seed in one process, so the
gap is measured on identical rows:

- peer: DeepCTR 0.9.4 `AutoInt` with the issue's configuration (a 16-wide row per distinct
  training value of every categorical field, unseen values on a shared out-of-vocabulary
  row; 3 interacting layers, 2 heads of 32, residual), plain (`--peer-dnn` empty) or AutoInt+
  (`--peer-dnn 256 256`, the default); numeric fields (Criteo) as DeepCTR's Criteo example
  feeds them: missing = 0, min-max scaled by the train rows. Adam at Keras' default rate,
  binary cross-entropy, batch 512; early stopping on validation AUC with patience 3, best
  pass kept.
- ours: `quality.fit` with `ue train`'s defaults at one tenth of the peers' embedding
  parameters (`quality.BUDGET_PARAMS`).

Both are scored on the test rows: AUC, logloss, calibration (mean predicted / observed CTR).
`ours_minus_peer_auc` is paired by seed. DeepCTR is never a dependency: install it outside
the repo (`pip install --no-deps --target /tmp/peer-lib deepctr==0.9.4`) and put it on
`PYTHONPATH`; without it, or without the shared samples, the script prints `{"skipped": ...}`.

Run: `PYTHONPATH=/tmp/peer-lib nice -n 5 .venv/bin/python benchmarks/peer_quality.py
--datasets frappe --seeds 0 1 2`. Prints one JSON line; the per-run lines go to stderr.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import importlib.util
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is not a package
import quality

from unified_embedding.metrics.exact import log_loss, roc_auc
from unified_embedding.rows.reader import RawRows

EMBEDDING_DIM = 16
PEER_CONFIG = {"att_layer_num": 3, "att_embedding_size": 32, "att_head_num": 2, "att_res": True}


def vocabularies(data: quality.Split) -> dict[str, dict[str, int]]:
    """Per categorical field, its distinct training values -> ids from 1 (0: unseen)."""
    return {
        f.name: {v: i + 1 for i, v in enumerate(sorted(set(data.train.columns[f.name])))}
        for f in data.spec.categorical_fields
    }


def numeric_range(data: quality.Split) -> dict[str, tuple[float, float]]:
    """Per numeric field, the train rows' (min, max), missing as 0."""
    ranges = {}
    for f in data.spec.numeric_fields:
        values = _numbers(data.train.columns[f.name])
        ranges[f.name] = (float(values.min()), float(values.max()))
    return ranges


def peer_inputs(
    rows: RawRows, vocab: dict[str, dict[str, int]], ranges: dict[str, tuple[float, float]]
) -> dict[str, np.ndarray]:
    """DeepCTR's input dict as its Criteo example builds it: categorical ids (0 for unseen
    values), numeric values with missing as 0, min-max scaled by the train rows' range."""
    inputs: dict[str, np.ndarray] = {}
    for name, ids in vocab.items():
        inputs[name] = np.array([ids.get(v, 0) for v in rows.columns[name]], np.int32)[:, None]
    for name, (low, high) in ranges.items():
        scaled = (_numbers(rows.columns[name]) - low) / max(high - low, 1e-12)
        inputs[name] = scaled.astype(np.float32)[:, None]
    return inputs


def _numbers(raw: np.ndarray) -> np.ndarray:
    return np.array([float(v) if v != "" else 0.0 for v in raw], np.float64)


def fit_peer(data: quality.Split, seed: int, dnn: tuple[int, ...]) -> dict[str, Any]:
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import AutoInt

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    vocab = vocabularies(data)
    columns = [SparseFeat(n, len(ids) + 1, embedding_dim=EMBEDDING_DIM) for n, ids in vocab.items()]
    columns += [DenseFeat(f.name, 1) for f in data.spec.numeric_fields]
    model = AutoInt(columns, columns, dnn_hidden_units=dnn, seed=seed, **PEER_CONFIG)
    model.compile("adam", "binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
    ranges = numeric_range(data)
    train, validation, test = (
        peer_inputs(rows, vocab, ranges) for rows in (data.train, data.validation, data.test)
    )
    stop = keras.callbacks.EarlyStopping(
        "val_auc", mode="max", patience=quality.PATIENCE, restore_best_weights=True
    )
    history = model.fit(
        train,
        data.train.labels,
        batch_size=quality.BATCH_SIZE,
        epochs=quality.MAX_PASSES,
        validation_data=(validation, data.validation.labels),
        callbacks=[stop],
        verbose=0,
    )
    scores = model.predict(test, batch_size=4096, verbose=0).reshape(-1)
    labels = data.test.labels
    embedding = sum(len(ids) + 1 for ids in vocab.values()) * EMBEDDING_DIM
    return {
        "dataset": data.name,
        "candidate": "peer",
        "seed": seed,
        "embedding_params": embedding,
        "passes": len(history.history["val_auc"]),
        "auc": roc_auc(labels, scores),
        "logloss": log_loss(labels, scores),
        "calibration": float(scores.mean() / labels.mean()),
    }


def mean_std(values: Sequence[float]) -> list[float | None]:
    std = statistics.stdev(values) if len(values) > 1 else None
    return [round(statistics.mean(values), 4), None if std is None else round(std, 4)]


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", type=Path)
    parser.add_argument("--datasets", nargs="+", default=sorted(quality.BUDGET_PARAMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--peer-dnn", type=int, nargs="*", default=[256, 256])
    args = parser.parse_args(argv)
    splits = [s for s in (quality.split(n, args.data_dir) for n in args.datasets) if s]
    skipped = None if splits else f"no samples in {args.data_dir}"
    if importlib.util.find_spec("deepctr") is None:
        skipped = "deepctr not found (see the docstring)"
    if skipped:
        result: dict[str, Any] = {"benchmark": "peer_quality", "skipped": skipped}
        print(json.dumps(result))
        return result
    tf.get_logger().setLevel("ERROR")
    ours_defaults = quality.baseline("test")
    runs = []
    for data in splits:
        for seed in args.seeds:
            for measured in (
                fit_peer(data, seed, tuple(args.peer_dnn)),
                quality.fit(data, ours_defaults, seed, data.test),
            ):
                runs.append(
                    {**measured, "candidate": measured["candidate"].replace("defaults", "ours")}
                )
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    summary = {}
    for data in splits:
        by = {
            who: {r["seed"]: r for r in runs if r["dataset"] == data.name and r["candidate"] == who}
            for who in ("peer", "ours")
        }
        gaps = [by["ours"][s]["auc"] - by["peer"][s]["auc"] for s in args.seeds]
        summary[data.name] = {
            **{
                f"{who}_{metric}": mean_std([r[metric] for r in by[who].values()])
                for who in ("peer", "ours")
                for metric in ("auc", "logloss", "calibration")
            },
            "peer_embedding_params": by["peer"][args.seeds[0]]["embedding_params"],
            "ours_embedding_params": by["ours"][args.seeds[0]]["embedding_params"],
            "ours_minus_peer_auc": mean_std(gaps),
            "ours_ahead_seeds": sum(g > 0 for g in gaps),
        }
    result = {
        "benchmark": "peer_quality",
        "split": {"seed": quality.SPLIT_SEED, "train": 0.8, "validation": 0.1, "test": 0.1},
        "seeds": args.seeds,
        "peer": {
            "model": "deepctr 0.9.4 AutoInt",
            "dnn_hidden_units": args.peer_dnn,
            **PEER_CONFIG,
            "embedding_dim": EMBEDDING_DIM,
        },
        "summary": summary,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
