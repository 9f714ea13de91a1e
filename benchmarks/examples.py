"""Classify/Regress inputs (tf.train.Examples) against Predict inputs (tensors), in-process.

Measures, in one run, for the same model and the same merged rows (`--rows` per request, a
context of `--context-fields` categorical fields):
  examples       what a Regress request costs the server before the batcher and in the model:
                 `Input.FromString` (an ExampleListWithContext) + `serving.examples
                 .batch_from_input` + the `packed` model call: rows/s and p50 ms per request
  predict        the baseline: `PredictRequest.FromString` (one tensor per field) +
                 `tensors.batch_from_request` + the same model call
  from_examples  the export's own `from_examples` signature on TF Serving's serialized
                 context + example strings (TensorFlow's C++ parse, no batcher): rows/s
`examples_vs_predict` is the examples path's rows/s over the baseline's. Without
`--model-base-path` a small Criteo-shaped model is trained and exported first (~30 s). Prints one
JSON line.

Run: `.venv/bin/python benchmarks/examples.py [--model-base-path E] [--rows 256]`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from serve import build_model  # benchmarks/serve.py, beside this script
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import input_pb2, predict_pb2

from protos import prediction_pb2
from serving.client import rows_from_file
from serving.examples import batch_from_input
from serving.model_manager import list_versions
from serving.predictor import Predictor
from serving.tensors import batch_from_request
from unified_embedding.runtime.threads import set_op_threads
from unified_embedding.synthetic import SyntheticConfig, generate


def _example(row: dict[str, Any]) -> example_pb2.Example:
    example = example_pb2.Example()
    for name, value in row.items():
        if isinstance(value, float):
            if not math.isnan(value):
                example.features.feature[name].float_list.value.append(value)
        elif value:
            example.features.feature[name].bytes_list.value.append(value.encode())
    return example


def requests(predictor: Predictor, rows: list[dict[str, Any]], context_fields: int) -> tuple:
    """The same merged rows as a serialized ExampleListWithContext and a PredictRequest."""
    shared = list(predictor.categorical_names[:context_fields])
    context = {k: rows[0][k] for k in shared}
    merged = [{**row, **context} for row in rows]
    examples = input_pb2.Input()
    listed = examples.example_list_with_context
    listed.context.CopyFrom(_example(context))
    for row in rows:
        listed.examples.append(_example({k: v for k, v in row.items() if k not in context}))
    predict = predict_pb2.PredictRequest()
    for name in merged[0]:
        values = [row[name] for row in merged]
        array = (
            np.array(values, np.float32)
            if name in predictor.numeric_names
            else np.array([v.encode() for v in values], object)
        )
        predict.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    serialized = [
        listed.context.SerializeToString() + e.SerializeToString() for e in listed.examples
    ]
    return examples.SerializeToString(), predict.SerializeToString(), serialized


def timed(call: Callable[[], Any], seconds: float) -> list[float]:
    for _ in range(5):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def figures(times: list[float], rows: int) -> dict[str, float]:
    p50 = float(np.percentile(times, 50))
    return {"rows_per_s": round(rows / p50), "p50_ms": round(p50 * 1e3, 3)}


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-base-path", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=256, help="rows per request")
    parser.add_argument("--context-fields", type=int, default=13)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    args = parser.parse_args(argv)
    set_op_threads(1)  # as `ue serve`
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.tsv"
        rows_file.write_bytes(
            generate(args.rows, SyntheticConfig(seed=4), start_row=10**6).to_tsv_bytes()
        )
        base = args.model_base_path or build_model(Path(tmp), rows_file)
        version = base / str(list_versions(base)[-1])
        predictor = Predictor.load(version)
        info = prediction_pb2.ModelInfo(
            fields=[prediction_pb2.Field(name=f.name, kind=f.kind) for f in predictor.spec.fields]
        )
        rows = rows_from_file(rows_file, "criteo", info)
        examples, predict, serialized = requests(predictor, rows, args.context_fields)
        from_examples = tf.saved_model.load(str(version)).signatures["from_examples"]
        strings = tf.constant(serialized)

        def examples_path() -> np.ndarray:
            batch = batch_from_input(predictor, input_pb2.Input.FromString(examples))
            return predictor.predict(batch)

        def predict_path() -> np.ndarray:
            request = predict_pb2.PredictRequest.FromString(predict)
            return predictor.predict(batch_from_request(predictor, request))

        np.testing.assert_allclose(examples_path(), predict_path(), rtol=1e-5)
        np.testing.assert_allclose(
            from_examples(examples=strings)["probability"].numpy(), predict_path(), rtol=1e-5
        )
        ours = figures(timed(examples_path, args.seconds), len(rows))
        baseline = figures(timed(predict_path, args.seconds), len(rows))
        signature = figures(timed(lambda: from_examples(examples=strings), args.seconds), len(rows))
    return {
        "what": "classify/regress inputs vs predict inputs, in-process",
        "rows": len(rows),
        "context_fields": args.context_fields,
        "examples": ours,
        "predict": baseline,
        "from_examples": signature,
        "examples_vs_predict": round(ours["rows_per_s"] / baseline["rows_per_s"], 2),
    }


if __name__ == "__main__":
    print(json.dumps(run()))
