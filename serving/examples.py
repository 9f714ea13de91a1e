"""TF Serving's `Input` (an `ExampleList` or an `ExampleListWithContext` of tf.train.Example)
-> one PackedBatch, so Classify and Regress share the Batcher and the `packed` fast path.

The parse follows the export's `from_examples` signature (`export.example_features`): one value
per field, an absent feature is a missing value, features the model does not know are ignored.
Numeric fields take a float_list or an int64_list; categorical fields a bytes_list; multi-valued
fields one delimited string or several values (joined with the field's separator). Context
features are merged into every example, the example's own feature winning on a name clash: TF
Serving serializes the context before each example, and a parsed map keeps the last entry.

Columns are built in one pass over the examples, then validated by the predictor as one batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from tensorflow.core.example import feature_pb2
from tensorflow_serving.apis import input_pb2

from serving.predictor import InvalidRequest, PackedBatch, Predictor
from unified_embedding.spec import FieldSpec

_NUMBER_LISTS = ("float_list", "int64_list")


def _describe(values: Iterable[object]) -> str:
    text = repr(list(values))
    return text if len(text) <= 60 else text[:57] + "..."


def _number(field: FieldSpec, feature: feature_pb2.Feature, where: str) -> float:
    kind = feature.WhichOneof("kind")
    if kind is None:
        return math.nan
    values = getattr(feature, kind).value
    if kind not in _NUMBER_LISTS:
        raise InvalidRequest(f"{where}feature `{field.name}`: expected a float_list or an "
                             f"int64_list, received a {kind} {_describe(values)}")  # fmt: skip
    if len(values) > 1:
        raise InvalidRequest(f"{where}feature `{field.name}`: expected one number, received "
                             f"{len(values)}: {_describe(values)}")  # fmt: skip
    return float(values[0]) if values else math.nan


def _string(field: FieldSpec, feature: feature_pb2.Feature, where: str) -> bytes:
    kind = feature.WhichOneof("kind")
    if kind is None:
        return b""
    values = getattr(feature, kind).value
    if kind != "bytes_list":
        raise InvalidRequest(f"{where}feature `{field.name}`: expected a bytes_list, received "
                             f"a {kind} {_describe(values)}")  # fmt: skip
    if len(values) <= 1:
        return values[0] if values else b""
    if field.separator is None:
        raise InvalidRequest(f"{where}feature `{field.name}`: expected one value, received "
                             f"{len(values)}: {_describe(values)}")  # fmt: skip
    return field.separator.encode().join(values)


def examples_of(
    request_input: input_pb2.Input,
) -> tuple[list[feature_pb2.Features], feature_pb2.Features | None]:
    """The examples' features and the context's (None without one); InvalidRequest when the
    input holds no example."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples, context = request_input.example_list.examples, None
    elif kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        examples, context = listed.examples, listed.context.features
    else:
        raise InvalidRequest("`input` is empty: give an `example_list` or an "
                             "`example_list_with_context`")  # fmt: skip
    if not examples:
        raise InvalidRequest(f"`input.{kind}` has no examples; send at least one")
    return [e.features for e in examples], context


def batch_from_input(predictor: Predictor, request_input: input_pb2.Input) -> PackedBatch:
    """The examples of `request_input` (context merged) as one batch for `predictor`."""
    features, context = examples_of(request_input)
    rows, max_rows = len(features), predictor.config.max_rows
    if rows > max_rows:
        raise InvalidRequest(f"the request has {rows} examples; at most {max_rows} are allowed")
    fields = {f.name: f for f in predictor.spec.fields}
    numeric = set(predictor.numeric_names)
    columns = {
        name: np.full(rows, math.nan, np.float32) if name in numeric else np.full(rows, b"", object)
        for name in fields
    }
    if context is not None:
        for name, feature in context.feature.items():
            if name in fields:
                convert = _number if name in numeric else _string
                columns[name][:] = convert(fields[name], feature, "context: ")
    for row, example in enumerate(features):
        for name, feature in example.feature.items():
            if name in fields:
                convert = _number if name in numeric else _string
                columns[name][row] = convert(fields[name], feature, f"example {row}: ")
    return predictor.pack_columns(columns)


__all__ = ["batch_from_input", "examples_of"]
