"""Score labelled rows with an exported model: read a file in the model's format (or a
schema's), and the model's P(click) for each row. `ue evaluate` and the notebooks use it.

    model = ExportedModel.load("export/")            # a base (its newest version) or a version
    rows, scores = score_file(model, "holdout.tsv")   # RawRows and float32 (rows,)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import SpecError
from unified_embedding.exported.model import ExportedModel
from unified_embedding.rows.reader import RawRows, read_rows

Model = ExportedModel | str | Path  # a loaded model, or the path of a base or a version


def as_model(model: Model) -> ExportedModel:
    return model if isinstance(model, ExportedModel) else ExportedModel.load(model)


def score_rows(model: Model, rows: RawRows, batch_size: int = 4096) -> np.ndarray:
    """The model's P(click) for raw rows (text cells), float32 (rows,)."""
    return as_model(model).score_rows(rows, batch_size)


def read_labelled(model: ExportedModel, data_path: str | Path, schema: str | None) -> RawRows:
    """The rows of `data_path`, read with `schema` (by default in the format of the model's own
    data: its spec.json), which must have every field of the model."""
    data_spec = model.spec if schema is None else load_schema(schema)
    missing = [name for name in model.spec.field_names if name not in data_spec.field_names]
    if missing:
        raise SpecError(f"schema `{schema}` lacks the model's fields {missing}")
    return read_rows(data_spec, data_path)


def score_file(
    model: Model, data_path: str | Path, schema: str | None = None
) -> tuple[RawRows, np.ndarray]:
    """The rows of `data_path` (`read_labelled`) and the model's P(click) for each."""
    model = as_model(model)
    rows = read_labelled(model, data_path, schema)
    return rows, model.score_rows(rows)
