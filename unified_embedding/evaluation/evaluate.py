"""`ue evaluate`: score labelled raw rows (any schema) through an exported SavedModel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from unified_embedding.contract.artifacts import SPEC_ASSET
from unified_embedding.contract.kinds import kind_of
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec, SpecError
from unified_embedding.metrics.exact import summary_metrics
from unified_embedding.rows.reader import RawRows, read_rows


def raw_batches(
    spec: FeatureSpec, rows: RawRows, batch_size: int
) -> Iterator[dict[str, tf.Tensor]]:
    """Inputs of the raw-features signature; numeric text is parsed the way the pipeline does."""
    for start in range(0, len(rows), batch_size):
        batch = {}
        for f in spec.fields:
            text = tf.constant(rows.columns[f.name][start : start + batch_size].astype(str))
            batch[f.name] = kind_of(f).from_text(text)
        yield batch


def model_spec(model_path: str | Path) -> FeatureSpec:
    return FeatureSpec.load(Path(model_path) / SPEC_ASSET)


def score_rows(model_path: str | Path, rows: RawRows, batch_size: int = 4096) -> np.ndarray:
    spec = model_spec(model_path)
    serve = tf.saved_model.load(str(model_path)).signatures["serving_default"]
    scores = [serve(**b)["probability"].numpy() for b in raw_batches(spec, rows, batch_size)]
    return np.concatenate(scores) if scores else np.zeros(0, np.float32)


def score_file(
    model_path: str | Path, data_path: str | Path, schema: str | None = None
) -> tuple[RawRows, np.ndarray]:
    """The rows of `data_path` (read with `schema`, by default in the format of the model's own
    data: its spec.json) and the model's P(click) for each."""
    spec = model_spec(model_path)
    data_spec = spec if schema is None else load_schema(schema)
    missing = [name for name in spec.field_names if name not in data_spec.field_names]
    if missing:
        raise SpecError(f"schema `{schema}` lacks the model's fields {missing}")
    rows = read_rows(data_spec, data_path)
    return rows, score_rows(model_path, rows)


def evaluate(
    model_path: str | Path, input_path: str | Path, schema: str | None = None
) -> dict[str, Any]:
    """AUC, log loss, calibration (mean predicted / observed CTR) and rows, as a dict."""
    rows, scores = score_file(model_path, input_path, schema)
    return {"model": str(model_path), **summary_metrics(rows.labels, scores)}
