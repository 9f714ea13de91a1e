"""TensorFlow Serving's REST JSON -> the predictor's batches (no HTTP here; see serving/rest.py).

    predict   {"instances": [{field: value, ...}, ...]}      row format -> "predictions"
              {"inputs": {field: [value, ...], ...}}         columnar   -> "outputs"
              signature `packed`: {"categorical": ..., "numeric": ...} in either format
    classify  {"examples": [{feature: value|[values], ...}], "context": {feature: value}}
    regress   the same request, as the gRPC API's Input of tf.train.Examples

Bytes travel as `{"b64": "..."}` (decoded while the JSON is parsed); numbers may be `NaN`
(missing), as TF Serving's JSON allows. Columns become NumPy arrays after one type check per
column, so the columnar format never loops per value in Python.

A body that is not JSON, nests deeper than Python's parser goes, or holds a number no float32
can take (an integer of 10^400, or of more digits than Python converts) is an InvalidRequest
(400), as is any value of the wrong type; none reaches the model or answers 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from serving.predictor import InvalidRequest, PackedBatch, Predictor
from unified_embedding.contract.raw_values import NUMBERS, STRINGS, RawType

SIGNATURES = ("serving_default", "packed")
# The JSON values each raw type takes (bool is not a number here, as in RawType.value).
_JSON_TYPES = {NUMBERS.name: frozenset({float, int}), STRINGS.name: frozenset({str, bytes})}


def _describe(value: Any) -> str:
    try:
        text = json.dumps(value, default=repr) if not isinstance(value, bytes) else repr(value)
    except (RecursionError, ValueError):  # nested deeper than json.dumps goes
        text = f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= 60 else text[:57] + "..."


def _bytes(obj: dict[str, Any]) -> Any:
    """json's object hook: `{"b64": "..."}` -> bytes; any other object as it is."""
    if len(obj) != 1 or "b64" not in obj:
        return obj
    value = obj["b64"]
    if not isinstance(value, str):
        raise InvalidRequest(f"`b64` should hold a base64 string. Received: {_describe(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise InvalidRequest(
            f"`b64` value {_describe(value)} is not base64 (the standard alphabet, padded with `=`)"
        ) from None


def parse_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object (InvalidRequest when it is not one)."""
    try:
        request = json.loads(body, object_hook=_bytes)
    except InvalidRequest:  # a bad `b64` object
        raise
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidRequest(f"the body is not valid JSON: {e}") from None
    except RecursionError:
        raise InvalidRequest(
            "the body is not valid JSON: it nests arrays or objects deeper "
            f"than {sys.getrecursionlimit()} levels"
        ) from None
    except ValueError:  # int(): Python's int-str limit, before any float conversion
        raise InvalidRequest(
            f"the body holds an integer of more than "
            f"{sys.get_int_max_str_digits()} digits; numbers must be finite "
            "float32 values"
        ) from None
    if not isinstance(request, dict):
        raise InvalidRequest(f"the body should be a JSON object. Received: {_describe(request)}")
    return request


def _signature(request: Mapping[str, Any], served: tuple[str, ...]) -> str:
    name = request.get("signature_name", "")
    if not isinstance(name, str) or name not in served:
        raise InvalidRequest(
            f"unknown `signature_name` {_describe(name)}; served: {[s for s in served if s]}"
        )
    return name


def _types(values: Any) -> frozenset[type]:
    return frozenset(map(type, values))


def _array(name: str, values: Any, raw: RawType, shape: tuple[int, ...]) -> np.ndarray:
    array = raw.empty(math.prod(shape), 1).reshape(shape)
    try:
        with np.errstate(over="ignore"):  # beyond float32 is inf, refused by the predictor
            array[...] = values
    except OverflowError:  # an int beyond float64; the loop runs on this error path only
        flat = np.asarray(values, dtype=object).ravel().tolist()
        i = next((i for i, v in enumerate(flat) if _overflows(v)), 0)
        row = i // shape[1] if len(shape) == 2 and shape[1] else i
        raise InvalidRequest(
            f"input `{name}`: row {row}: received {_describe(flat[i])}; "
            "numbers must be finite float32 values"
        ) from None
    return array


def _overflows(value: Any) -> bool:
    try:
        float(value)
    except OverflowError:
        return True
    except (TypeError, ValueError):
        return False
    return False


def column(name: str, values: Any, raw: RawType | None) -> np.ndarray:
    """A JSON list of numbers or of strings/bytes as one 1-D array of their raw type; an empty
    list as an empty array of the field's raw type `raw` (None: an unknown field)."""
    if not isinstance(values, list):
        raise InvalidRequest(
            f"input `{name}`: expected a list of values, received {_describe(values)}"
        )
    kinds = _types(values)
    for candidate in (raw or NUMBERS, STRINGS, NUMBERS):
        if kinds <= _JSON_TYPES[candidate.name]:
            return _array(name, values, candidate, (len(values),))
    raise InvalidRequest(
        f"input `{name}`: expected all numbers or all strings, received "
        f"{sorted(k.__name__ for k in kinds)}"
    )


def _matrix(name: str, rows: Any, raw: RawType) -> np.ndarray:
    """A `packed` signature input: a list of rows of equal length, values of type `raw`."""
    cells = np.empty(0, dtype=object)
    if isinstance(rows, list) and all(type(r) is list for r in rows):
        width = len(rows[0]) if rows else 0
        if all(len(r) == width for r in rows):
            cells = np.empty((len(rows), width), dtype=object)
            cells[:] = rows
    if cells.ndim != 2:
        raise InvalidRequest(
            f"input `{name}`: expected a list of rows of equal length, received {_describe(rows)}"
        )
    kinds = _types(cells.ravel())
    if not kinds <= _JSON_TYPES[raw.name]:
        raise InvalidRequest(
            f"input `{name}`: expected {raw.name}, received {sorted(k.__name__ for k in kinds)}"
        )
    return _array(name, cells, raw, cells.shape)


def _packed(predictor: Predictor, inputs: Mapping[str, Any]) -> PackedBatch:
    widths = predictor.packed_widths
    if set(inputs) != set(widths):
        raise InvalidRequest(
            f"signature `packed` takes inputs {sorted(widths)}; received {sorted(inputs)}"
        )
    raws = {raw.packed_input: raw for raw in (NUMBERS, STRINGS)}
    return predictor.check_packed(
        **{name: _matrix(name, inputs[name], raws[name]) for name in widths}
    )


def _single_input(predictor: Predictor, what: str) -> str:
    """The one input a bare value list feeds (TF Serving's form for one-input signatures)."""
    names = predictor.spec.field_names
    if len(names) != 1:
        raise InvalidRequest(
            f"`{what}` without input names fits a signature of one input; this "
            f"one takes {len(names)}: give objects of field -> value"
        )
    return names[0]


def predict_batch(predictor: Predictor, request: Mapping[str, Any]) -> tuple[PackedBatch, str]:
    """A predict request's batch and the key its answer goes under (`predictions` for the row
    format, `outputs` for the columnar one)."""
    signature = _signature(request, ("", *SIGNATURES))
    if ("instances" in request) == ("inputs" in request):
        raise InvalidRequest(
            "give either `instances` (row format) or `inputs` (columnar "
            "format), exactly one of them"
        )
    if "instances" in request:
        instances = request["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidRequest(
                f"`instances` should be a non-empty list. Received: {_describe(instances)}"
            )
        if not all(type(i) is dict for i in instances):
            if signature == "packed" or any(type(i) is dict for i in instances):
                raise InvalidRequest("`instances` should be a list of objects of input -> value")
            return predictor.pack_rows(
                [{_single_input(predictor, "instances"): v} for v in instances]
            ), "predictions"
        if signature == "packed":
            names = {k for i in instances for k in i}
            return _packed(
                predictor, {k: [i.get(k) for i in instances] for k in names}
            ), "predictions"
        return predictor.pack_rows(instances), "predictions"
    inputs = request["inputs"]
    if not isinstance(inputs, dict):
        inputs = {_single_input(predictor, "inputs"): inputs}
    if signature == "packed":
        return _packed(predictor, inputs), "outputs"
    fields = set(predictor.spec.field_names)
    columns = {
        k: column(k, v, predictor.raw_type(k) if k in fields else None) for k, v in inputs.items()
    }
    return predictor.pack_columns(columns), "outputs"


def _feature(where: str, name: str, value: Any) -> feature_pb2.Feature:
    """A JSON feature value (a value or a list) as a tf.train.Feature: strings and bytes as a
    bytes_list, numbers as a float_list, an empty list as a feature without values."""
    values = value if type(value) is list else [value]
    kinds = _types(values)
    if kinds <= _JSON_TYPES[STRINGS.name]:
        encoded = [v.encode() if isinstance(v, str) else v for v in values]
        return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=encoded))
    if kinds <= _JSON_TYPES[NUMBERS.name]:
        try:
            return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=values))
        except OverflowError:  # an int beyond float64
            bad = next((v for v in values if _overflows(v)), values[0])
            raise InvalidRequest(
                f"{where}feature `{name}`: received {_describe(bad)}; numbers "
                "must be finite float32 values"
            ) from None
    raise InvalidRequest(
        f"{where}feature `{name}`: expected numbers or strings, received {_describe(value)}"
    )


def _features(where: str, values: Any) -> feature_pb2.Features:
    if type(values) is not dict:
        raise InvalidRequest(
            f"{where}expected an object of feature -> value, received {_describe(values)}"
        )
    return feature_pb2.Features(feature={k: _feature(where, k, v) for k, v in values.items()})


def examples_input(request: Mapping[str, Any]) -> input_pb2.Input:
    """A classify or regress request's `examples` (and `context`) as the gRPC API's Input, so
    both APIs read examples the same way (serving/examples.py: context merged, the example's
    own feature winning, an absent feature missing)."""
    examples, context = request.get("examples"), request.get("context")
    if not isinstance(examples, list) or not examples:
        raise InvalidRequest(
            f"`examples` should be a non-empty list of objects. Received: {_describe(examples)}"
        )
    listed = [
        example_pb2.Example(features=_features(f"example {i}: ", e)) for i, e in enumerate(examples)
    ]
    if context is None:
        return input_pb2.Input(example_list=input_pb2.ExampleList(examples=listed))
    return input_pb2.Input(
        example_list_with_context=input_pb2.ExampleListWithContext(
            examples=listed, context=example_pb2.Example(features=_features("context: ", context))
        )
    )


__all__ = ["SIGNATURES", "column", "examples_input", "parse_body", "predict_batch"]
