"""Our AutoInt's training step next to DeepCTR's AutoInt at equal model size, back to back.

Both attend over the 26 categorical fields of the same generated Criteo rows with the paper's
interacting stack (embedding 16, 3 layers, 2 heads of 32, residual), batch 1024, fed by the
same in-memory `tf.data` pipeline and timed the same way (`train.py`'s steady-state `fit` and
`tf.function` prediction over in-memory batches):

- peer: DeepCTR 0.9.4's `AutoInt` (per-field vocabulary tables of the rows' distinct values,
  `dnn_hidden_units=()`, its linear part over all 39 fields, Adam, float32);
- ours: `UnifiedEmbedding` (a 2^16 x 8 table, 2 probes per field) + AutoInt with the product's
  optimizer (sparse Adagrad on the table, Adam on the rest), float32 and mixed_bfloat16.

DeepCTR is never a dependency: install it outside the repo and put it on the path, e.g.
`pip install --no-deps --target /tmp/peer-lib deepctr==0.9.4`, then
`PYTHONPATH=/tmp/peer-lib .venv/bin/python benchmarks/peer_autoint.py --rows 200000`.
Without it the script prints `{"skipped": ...}` and exits 0. `--repeats` alternates the
measurements (peer, ours float32, ours bfloat16) that many times. Prints one JSON line.
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
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is not a package
import train as bench

from unified_embedding.contract.schemas import criteo

EMBEDDING_DIM = 16
PEER_CONFIG = {"att_layer_num": 3, "att_embedding_size": 32, "att_head_num": 2, "att_res": True}


def peer_inputs(features: bench.Tensors) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """DeepCTR's inputs from ours: each categorical field's probe-0 fingerprints as dense ids
    of its distinct values (vocabulary sizes alongside), numeric fields with 0 for missing."""
    spec = criteo()
    inputs, vocabularies = {}, {}
    for f in spec.categorical_fields:
        distinct, ids = np.unique(features[f.name].numpy()[:, 0], return_inverse=True)
        inputs[f.name] = ids.reshape(-1, 1).astype(np.int32)
        vocabularies[f.name] = len(distinct)
    for f in spec.numeric_fields:
        inputs[f.name] = np.nan_to_num(features[f.name].numpy()).reshape(-1, 1)
    return inputs, vocabularies


def build_peer(vocabularies: dict[str, int], seed: int) -> keras.Model:
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import AutoInt

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    columns = [SparseFeat(n, v, embedding_dim=EMBEDDING_DIM) for n, v in vocabularies.items()]
    columns += [DenseFeat(f.name, 1) for f in criteo().numeric_fields]
    model = AutoInt(columns, columns, dnn_hidden_units=(), seed=seed, **PEER_CONFIG)
    model.compile("adam", "binary_crossentropy")
    return model


def peer_rates(
    inputs: dict[str, np.ndarray], labels: np.ndarray, vocabularies: dict[str, int], args: Any
) -> dict[str, float]:
    """DeepCTR AutoInt's train (wall and CPU) and predict examples/s, as `train.py` times ours."""
    model = build_peer(vocabularies, args.seed)
    dataset = bench.cached_batches((inputs, labels), len(labels), bench.BATCH_SIZE, args.seed)
    per_second, per_cpu_second = bench.timed_fit(model, dataset, args.steps)
    batches = list(
        tf.data.Dataset.from_tensor_slices(inputs)
        .batch(bench.BATCH_SIZE, drop_remainder=True)
        .take(bench.PREDICT_WARMUP_BATCHES + bench.PREDICT_BATCHES)
    )
    predict = tf.function(lambda batch: model(batch, training=False))
    for batch in batches[: bench.PREDICT_WARMUP_BATCHES]:
        predict(batch).numpy()
    started = time.perf_counter()
    for batch in batches[bench.PREDICT_WARMUP_BATCHES :]:
        predict(batch).numpy()
    return {
        "train_examples_per_second": per_second * bench.BATCH_SIZE,
        "train_examples_per_cpu_second": per_cpu_second * bench.BATCH_SIZE,
        "predict_examples_per_second": bench.PREDICT_BATCHES
        * bench.BATCH_SIZE
        / (time.perf_counter() - started),
    }


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if importlib.util.find_spec("deepctr") is None:
        result: dict[str, Any] = {"benchmark": "peer_autoint", "skipped": "deepctr not found"}
        print(json.dumps(result))
        return result
    tf.get_logger().setLevel("ERROR")
    spec = criteo()
    features = bench.encoded_rows(args.rows, args.seed, spec)
    inputs, vocabularies = peer_inputs(features)
    labels = features["label"].numpy()
    categorical, ours_features = bench.categorical_only(spec, features)
    keys = ("train_examples_per_second", "train_examples_per_cpu_second")
    keys += ("predict_examples_per_second",)
    runs: dict[str, list[dict[str, float]]] = {"peer": [], "float32": [], "mixed_bfloat16": []}
    for _ in range(args.repeats):
        runs["peer"].append(peer_rates(inputs, labels, vocabularies, args))
        for precision in ("float32", "mixed_bfloat16"):
            measured = bench.measure_size(
                categorical, 2**16, precision, ours_features, args.steps, args.seed
            )
            runs[precision].append({k: float(measured[k]) for k in keys})
    means = {
        name: {k: round(statistics.mean(r[k] for r in measured)) for k in keys}
        for name, measured in runs.items()
    }
    result = {
        "benchmark": "peer_autoint",
        "rows": args.rows,
        "batch_size": bench.BATCH_SIZE,
        "attended_fields": len(categorical.fields),
        "peer_embedding_params": sum(vocabularies.values()) * EMBEDDING_DIM,
        "ours_embedding_params": 2**16 * bench.TABLE_WIDTH,
        "means": means,
        "runs": {n: [{k: round(v) for k, v in r.items()} for r in m] for n, m in runs.items()},
        "ours_vs_peer_train": {
            p: round(means[p]["train_examples_per_second"] / means["peer"][k], 2)
            for p in ("float32", "mixed_bfloat16")
            for k in ["train_examples_per_second"]
        },
        "ours_vs_peer_train_cpu": {
            p: round(
                means[p]["train_examples_per_cpu_second"]
                / means["peer"]["train_examples_per_cpu_second"],
                2,
            )
            for p in ("float32", "mixed_bfloat16")
        },
        "ours_vs_peer_predict": {
            p: round(
                means[p]["predict_examples_per_second"]
                / means["peer"]["predict_examples_per_second"],
                2,
            )
            for p in ("float32", "mixed_bfloat16")
        },
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
