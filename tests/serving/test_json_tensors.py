"""TF Serving's REST predict JSON -> the predictor's PackedBatch, without a model or a server:
the row and columnar formats, of both signatures, give the batch written out by hand below.

    row  n1    c1    m1                 n2       fields in spec order: n1 c1 m1 n2
    0    1.5   "a"   "x|y"              NaN      categorical = (c1, m1), object
    1    -2    ""    {"b64": "w6l8eg=="}  7      numeric     = (n1, n2), float32
                     (b"\\xc3\\xa9|z", bytes stay bytes)
"""

import base64
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from serving.json_tensors import column, parse_body, predict_batch
from serving.predictor import InvalidRequest, PackedBatch, Predictor, PredictorConfig
from unified_embedding.contract.raw_values import NUMBERS, STRINGS
from unified_embedding.contract.schemas import from_short_form

SPEC = from_short_form(
    {
        "columns": ["y", "n1", "c1", "m1", "n2"],
        "label": "y",
        "numeric": ["n1", "n2"],
        "multi_valued": {"m1": "|"},
    }
)
B64 = {"b64": base64.b64encode("é|z".encode()).decode()}
CATEGORICAL = np.array([["a", "x|y"], ["", "é|z".encode()]], dtype=object)
NUMERIC = np.array([[1.5, math.nan], [-2.0, 7.0]], dtype=np.float32)
ROWS = [
    {"n1": 1.5, "c1": "a", "m1": "x|y", "n2": math.nan},
    {"n1": -2, "c1": "", "m1": B64, "n2": 7},
]
COLUMNS = {"n1": [1.5, -2], "c1": ["a", ""], "m1": ["x|y", B64], "n2": [math.nan, 7]}
PACKED_ROWS = [
    {"categorical": ["a", "x|y"], "numeric": [1.5, math.nan]},
    {"categorical": ["", B64], "numeric": [-2, 7]},
]
PACKED_COLUMNS = {"categorical": [["a", "x|y"], ["", B64]], "numeric": [[1.5, math.nan], [-2, 7]]}


def predictor(spec: Any = SPEC, max_rows: int = 4) -> Predictor:
    """A predictor of `spec` whose model is never called: packing requests needs only the
    spec (the signatures are looked up when the predictor is built)."""
    loaded = SimpleNamespace(signatures={"packed": None, "attention": None})
    return Predictor(Path("export/1"), spec, loaded, PredictorConfig(max_rows=max_rows))


def body(request: dict) -> bytes:
    """The request as a REST client sends it (NaN as JSON's NaN, b64 objects as objects)."""
    return json.dumps(request).encode()


def batch_of(request: dict, served: Predictor | None = None) -> tuple[PackedBatch, str]:
    return predict_batch(served or predictor(), parse_body(body(request)))


def assert_batch(batch: PackedBatch, categorical: np.ndarray, numeric: np.ndarray) -> None:
    assert batch.categorical.dtype == object and batch.numeric.dtype == np.float32
    assert batch.categorical.shape == categorical.shape
    assert batch.numeric.shape == numeric.shape
    assert batch.categorical.tolist() == categorical.tolist()  # str stays str, bytes bytes
    np.testing.assert_array_equal(batch.numeric, numeric)  # NaN where NaN


@pytest.mark.parametrize(
    ("request_", "key"),
    [
        ({"instances": ROWS}, "predictions"),
        ({"inputs": COLUMNS}, "outputs"),
        ({"signature_name": "serving_default", "inputs": COLUMNS}, "outputs"),
        ({"signature_name": "packed", "instances": PACKED_ROWS}, "predictions"),
        ({"signature_name": "packed", "inputs": PACKED_COLUMNS}, "outputs"),
    ],
    ids=["rows", "columns", "columns-named", "packed-rows", "packed-columns"],
)
def test_every_format_gives_the_batch_of_the_diagram(request_: dict, key: str) -> None:
    batch, answer_key = batch_of(request_)
    assert answer_key == key
    assert_batch(batch, CATEGORICAL, NUMERIC)


def test_b64_values_are_decoded_while_parsing() -> None:
    request = {"inputs": {"c1": [B64, {"b64": ""}], "m1": [{"b64": "eA==", "more": 1}]}}
    parsed = parse_body(body(request))
    assert parsed["inputs"]["c1"] == ["é|z".encode(), b""]
    assert parsed["inputs"]["m1"] == [{"b64": "eA==", "more": 1}]  # not a b64 object: kept


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"inputs": {"c1": [{"b64": "not base64!"}]}}', r"`b64` value \"not base64!\" is not"),
        (b'{"inputs": {"c1": [{"b64": 7}]}}', r"`b64` should hold a base64 string. Received: 7"),
        (b"[1, 2]", r"the body should be a JSON object. Received: \[1, 2\]"),
        (b'{"inputs": ', "the body is not valid JSON"),
        (b"\xff{}", "the body is not valid JSON"),
    ],
)
def test_bodies_that_are_not_requests_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_body(raw)


def test_a_one_input_model_takes_bare_value_lists() -> None:
    one = predictor(from_short_form({"columns": ["y", "c"], "label": "y"}))
    expected = np.array([["p"], ["q"]], dtype=object)
    for request in (
        {"instances": ["p", "q"]},
        {"inputs": ["p", "q"]},
        {"inputs": {"c": ["p", "q"]}},
    ):
        batch, _ = batch_of(request, one)
        assert_batch(batch, expected, np.zeros((2, 0), np.float32))
    with pytest.raises(InvalidRequest, match="fits a signature of one input; this one takes 4"):
        batch_of({"instances": ["p", "q"]})


def test_columns_keep_their_raw_type_after_one_check() -> None:
    numbers = column("n1", [1, 2.5, math.nan], NUMBERS)
    assert numbers.dtype == np.float32 and numbers.shape == (3,)
    strings = column("c1", ["a", b"b"], STRINGS)
    assert strings.dtype == object and strings.tolist() == ["a", b"b"]
    assert column("c1", [], STRINGS).dtype == object  # empty: the field's own type
    assert column("n1", [], NUMBERS).dtype == np.float32
    assert column("unknown", ["a"], None).dtype == object  # by its values


# Wrong shapes and types: refused naming the input (and the row when there is one).
WRONG = [
    (
        {"signature_name": "packed", "inputs": {**PACKED_COLUMNS, "numeric": [[1, 2, 3]]}},
        r"input `numeric`: expected shape \(rows, 2\), received \(1, 3\)",
    ),
    (
        {"signature_name": "packed", "inputs": {**PACKED_COLUMNS, "numeric": [1, 2]}},
        "input `numeric`: expected a list of rows of equal length",
    ),
    (
        {
            "signature_name": "packed",
            "inputs": {**PACKED_COLUMNS, "categorical": [["a"], ["b", "c"]]},
        },
        "input `categorical`: expected a list of rows of equal length",
    ),
    (
        {"signature_name": "packed", "inputs": {**PACKED_COLUMNS, "numeric": [[1, 2]]}},
        "inputs `categorical` and `numeric` have different numbers of rows: 2 and 1",
    ),
    (
        {"signature_name": "packed", "inputs": {**PACKED_COLUMNS, "numeric": [["1", "2"]] * 2}},
        r"input `numeric`: expected numbers, received \['str'\]",
    ),
    (
        {"signature_name": "packed", "inputs": {"categorical": [["a", "b"]]}},
        r"signature `packed` takes inputs \['categorical', 'numeric'\]; received \['categorical'\]",
    ),
    (
        {"inputs": {**COLUMNS, "n1": [[1.5], [-2]]}},
        r"input `n1`: expected all numbers or all strings",
    ),
    ({"inputs": {**COLUMNS, "n1": 1.5}}, "input `n1`: expected a list of values, received 1.5"),
    (
        {"inputs": {**COLUMNS, "n1": ["1.5", "-2"]}},
        "field `n1`: expected numbers, received strings",
    ),
    ({"inputs": {**COLUMNS, "c1": [1, 2]}}, "field `c1`: expected strings, received numbers"),
    ({"inputs": {**COLUMNS, "n2": [1]}}, "fields have different numbers of rows"),
    ({"inputs": {**COLUMNS, "n2": [1, 10**400]}}, "input `n2`: row 1: received 1000000000"),
    ({"inputs": {**COLUMNS, "extra": [1, 2]}}, "unknown field `extra`"),
    ({"inputs": {k: v for k, v in COLUMNS.items() if k != "m1"}}, "missing field `m1`"),
    ({"inputs": {k: [] for k in COLUMNS}}, "the request has no rows"),
    ({"instances": [ROWS[0], {**ROWS[1], "n2": "7"}]}, "row 1: field `n2`: expected a number"),
    ({"instances": [ROWS[0], {"n1": 1, "c1": "a", "m1": ""}]}, "row 1: missing field `n2`"),
    ({"instances": ROWS * 3}, "the request has 6 rows; at most 4 are allowed"),
    ({"instances": [ROWS[0], "x"]}, "`instances` should be a list of objects of input -> value"),
    ({"instances": []}, r"`instances` should be a non-empty list. Received: \[\]"),
    ({"instances": ROWS, "inputs": COLUMNS}, "give either `instances`"),
    ({"rows": ROWS}, "give either `instances`"),
    ({"signature_name": "attention", "inputs": COLUMNS}, 'unknown `signature_name` "attention"'),
]


@pytest.mark.parametrize(("request_", "message"), WRONG)
def test_wrong_requests_are_refused_naming_the_input(request_: dict, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        batch_of(request_)


def test_ragged_packed_rows_are_refused_naming_the_input() -> None:
    # Two rows, the first of two values: the same count of rows as of the first row's values.
    ragged = {
        "signature_name": "packed",
        "inputs": {**PACKED_COLUMNS, "categorical": [["a", "b"], ["c"]]},
    }
    with pytest.raises(InvalidRequest, match="input `categorical`"):
        batch_of(ragged)


def test_ragged_packed_rows_are_refused_as_rows_of_unequal_length() -> None:
    ragged = {
        "signature_name": "packed",
        "inputs": {**PACKED_COLUMNS, "categorical": [["a", "b"], ["c"]]},
    }
    with pytest.raises(
        InvalidRequest, match="input `categorical`: expected a list of rows of equal"
    ):
        batch_of(ragged)
