"""JSON written by the notebooks and the evaluation: `null` where a number is undefined, never
the bare `NaN` or `Infinity` that strict parsers (and JSON itself) refuse.

    write_json(out / "summary.json", {"auc": float("nan"), "slices": slices_frame})
    # {"auc": null, "slices": [{"value": "a", "auc": 0.71, ...}, ...]}

`plain` turns what the evaluation holds into JSON values: NaN and infinities -> None, NumPy
scalars and arrays -> numbers and lists, DataFrames -> lists of records, paths -> strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pandas as pd


def plain(value: Any) -> Any:
    """`value` as JSON values, undefined numbers as None (module docstring)."""
    if isinstance(value, pd.DataFrame):
        return [plain(record) for record in value.to_dict("records")]
    if isinstance(value, pd.Series | np.ndarray | list | tuple):
        return [plain(item) for item in list(value)]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, PurePath):
        return str(value)
    if value is pd.NaT or value is pd.NA:
        return None
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    """`value` as JSON text (`plain`); raises ValueError rather than write a bare NaN."""
    return json.dumps(plain(value), indent=indent, allow_nan=False)


def write_json(path: str | Path, value: Any) -> Path:
    """Writes `value` as JSON (`dumps`, a trailing newline) at `path`; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(dumps(value) + "\n", encoding="utf-8")
    return target
