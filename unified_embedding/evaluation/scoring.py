"""Score a labelled file with an exported model: find the version, read the rows, score them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unified_embedding.evaluate import model_spec, score_rows
from unified_embedding.rows import RawRows, read_rows
from unified_embedding.schemas import load_schema
from unified_embedding.spec import SpecError


def resolve_version(path: str | Path) -> Path:
    """`path` itself if it is a SavedModel, else its newest numeric version (`ue export` layout)."""
    root = Path(path)
    if (root / "saved_model.pb").is_file():
        return root
    versions = sorted(
        (p for p in root.glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file()),
        key=lambda p: int(p.name),
    )
    if not versions:
        raise FileNotFoundError(f"no SavedModel at {root} nor in numeric version folders under it")
    return versions[-1]


def score_file(
    model_path: str | Path, data_path: str | Path, schema: str
) -> tuple[RawRows, np.ndarray]:
    """The rows of `data_path` (read with `schema`) and the model's P(click) for each."""
    spec = model_spec(model_path)
    data_spec = load_schema(schema)
    missing = [name for name in spec.field_names if name not in data_spec.field_names]
    if missing:
        raise SpecError(f"schema `{schema}` lacks the model's fields {missing}")
    rows = read_rows(data_spec, data_path)
    return rows, score_rows(model_path, rows)
