"""The notebooks' JSON: null where a number is undefined (never a bare NaN), NumPy and pandas
values as plain JSON."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unified_embedding.evaluation.json_report import dumps, plain, write_json


def test_undefined_numbers_become_null_everywhere(tmp_path: Path) -> None:
    frame = pd.DataFrame({"value": ["a", "b"], "auc": [0.7, np.nan], "rows": [3, 4]})
    summary = {
        "auc": float("nan"),
        "logloss": np.float32(0.5),
        "ceiling": np.inf,
        "counts": np.array([1, 2]),
        "slices": frame,
        "nested": [{"x": -math.inf}, (np.int64(3), Path("out/a.png"))],
    }
    path = write_json(tmp_path / "sub" / "summary.json", summary)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text and text.endswith("}\n")
    assert json.loads(text) == {
        "auc": None,
        "logloss": 0.5,
        "ceiling": None,
        "counts": [1, 2],
        "slices": [{"value": "a", "auc": 0.7, "rows": 3}, {"value": "b", "auc": None, "rows": 4}],
        "nested": [{"x": None}, [3, "out/a.png"]],
    }


def test_plain_keeps_json_values_and_dumps_refuses_what_it_cannot_write() -> None:
    assert plain({"a": [1, "x", True, None, 2.5]}) == {"a": [1, "x", True, None, 2.5]}
    assert json.loads(dumps([np.nan], indent=None)) == [None]
    with pytest.raises(TypeError):
        dumps({"a": object()})
