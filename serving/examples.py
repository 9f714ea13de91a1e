"""TF Serving's `Input` (an `ExampleList` or an `ExampleListWithContext` of tf.train.Example)
-> one PackedBatch, so Classify and Regress share the Batcher and the `packed` fast path.

The parse is the export's `from_examples` one (`kinds.example_feature` per field): one value per
field, an absent feature is a missing value, features the model does not know are ignored.
Context features are merged into every example, the example's own feature winning on a name
clash, as TF Serving does: it serializes the context before each example, and a parsed map keeps
the last entry. The block is parsed by TensorFlow in one op; only when it refuses a request are
the examples walked in Python, to accept what TensorFlow's fixed-length parse does not (an
int64_list for a numeric field, several values of a multi-valued field, joined with its
separator) and to name the feature and the value of anything else (a bytes_list for a number,
two values for a categorical field).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import tensorflow as tf
from tensorflow.core.example import feature_pb2
from tensorflow_serving.apis import input_pb2

from serving.predictor import InvalidRequest, PackedBatch, Predictor
from unified_embedding.contract.kinds import kind_of
from unified_embedding.contract.spec import FieldSpec

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
        raise InvalidRequest(
            f"{where}feature `{field.name}`: expected a float_list or an "
            f"int64_list, received a {kind} {_describe(values)}"
        )
    if len(values) > 1:
        raise InvalidRequest(
            f"{where}feature `{field.name}`: expected one number, received "
            f"{len(values)}: {_describe(values)}"
        )
    return float(values[0]) if values else math.nan


def _string(field: FieldSpec, feature: feature_pb2.Feature, where: str) -> bytes:
    kind = feature.WhichOneof("kind")
    if kind is None:
        return b""
    values = getattr(feature, kind).value
    if kind != "bytes_list":
        raise InvalidRequest(
            f"{where}feature `{field.name}`: expected a bytes_list, received "
            f"a {kind} {_describe(values)}"
        )
    if len(values) <= 1:
        return values[0] if values else b""
    if field.separator is None:
        raise InvalidRequest(
            f"{where}feature `{field.name}`: expected one value, received "
            f"{len(values)}: {_describe(values)}"
        )
    return field.separator.encode().join(values)


def examples_of(
    request_input: input_pb2.Input,
) -> tuple[list[bytes], feature_pb2.Features | None, list[feature_pb2.Features]]:
    """Each example serialized after the context (TF Serving's input to `from_examples`), the
    context's features (None without one) and the examples' own; InvalidRequest when the input
    holds no example."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        examples, context = request_input.example_list.examples, None
    elif kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        examples, context = listed.examples, listed.context
    else:
        raise InvalidRequest(
            "`input` is empty: give an `example_list` or an `example_list_with_context`"
        )
    if not examples:
        raise InvalidRequest(f"`input.{kind}` has no examples; send at least one")
    prefix = b"" if context is None else context.SerializeToString()
    serialized = [prefix + e.SerializeToString() for e in examples]
    return serialized, None if context is None else context.features, [e.features for e in examples]


def _parsed(fields: Iterable[FieldSpec], serialized: list[bytes]) -> dict[str, np.ndarray] | None:
    """TensorFlow's parse of the whole block, None when it refuses it."""
    features = {f.name: kind_of(f).example_feature() for f in fields}
    try:
        parsed = tf.io.parse_example(tf.constant(serialized), features)
    except tf.errors.InvalidArgumentError:
        return None
    return {name: tensor.numpy() for name, tensor in parsed.items()}


def _walked(
    predictor: Predictor,
    context: feature_pb2.Features | None,
    examples: list[feature_pb2.Features],
) -> dict[str, np.ndarray]:
    """The columns built feature by feature (the lenient forms; InvalidRequest otherwise)."""
    rows = len(examples)
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
    for row, example in enumerate(examples):
        for name, feature in example.feature.items():
            if name in fields:
                convert = _number if name in numeric else _string
                columns[name][row] = convert(fields[name], feature, f"example {row}: ")
    return columns


def batch_from_input(predictor: Predictor, request_input: input_pb2.Input) -> PackedBatch:
    """The examples of `request_input` (context merged) as one batch for `predictor`."""
    serialized, context, examples = examples_of(request_input)
    rows, max_rows = len(serialized), predictor.config.max_rows
    if rows > max_rows:
        raise InvalidRequest(f"the request has {rows} examples; at most {max_rows} are allowed")
    columns = _parsed(predictor.spec.fields, serialized)
    if columns is None:
        columns = _walked(predictor, context, examples)
    return predictor.pack_columns(columns)


__all__ = ["batch_from_input", "examples_of"]
