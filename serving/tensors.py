"""TensorFlow Serving's `PredictRequest` <-> the predictor's batches (no gRPC here).

`serving_default` requests carry one 1-D tensor per field (DT_STRING for categorical fields,
DT_FLOAT for numeric ones); `packed` requests carry `categorical` (rows, categorical fields)
DT_STRING and `numeric` (rows, numeric fields) DT_FLOAT. The declared shape is checked against
`max_rows`, the signature's width and the number of values or bytes actually sent before any
array is made, so a request cannot make the server allocate more than its own size (a 77-byte
request declaring a (4096, 10000) string tensor used to be expanded by `tf.make_ndarray`).
Float values sent as `tensor_content` bytes are decoded with one `np.frombuffer`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.predictor import InvalidRequest, PackedBatch, Predictor
from unified_embedding.contract.artifacts import WARMUP_FILE
from unified_embedding.contract.raw_values import NUMBERS, STRINGS

SIGNATURES = ("serving_default", "packed")
_DTYPES = {NUMBERS.name: types_pb2.DT_FLOAT, STRINGS.name: types_pb2.DT_STRING}
_PACKED_DTYPES = {raw.packed_input: _DTYPES[raw.name] for raw in (NUMBERS, STRINGS)}
_FLOAT32 = np.dtype("<f4")  # tensor_content is little-endian, as TensorFlow writes it


def _dtype_name(dtype: int) -> str:
    return types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else str(dtype)


def to_array(
    name: str,
    tensor: tensor_pb2.TensorProto,
    dtype: int,
    shape: tuple[int | None, ...],
    max_rows: int,
) -> np.ndarray:
    """A TensorProto of `dtype` and `shape` (None: any number of rows, at most `max_rows`) as
    NumPy; InvalidRequest names the input otherwise. Nothing is allocated before the declared
    shape agrees with the values sent."""
    if tensor.dtype != dtype:
        raise InvalidRequest(
            f"field `{name}`: expected a {_dtype_name(dtype)} tensor, "
            f"received {_dtype_name(tensor.dtype)}"
        )
    dims = [d.size for d in tensor.tensor_shape.dim]
    wanted = ", ".join("rows" if d is None else str(d) for d in shape) + ("," * (len(shape) == 1))
    if len(dims) != len(shape) or any(d < 0 for d in dims) or tensor.tensor_shape.unknown_rank:
        raise InvalidRequest(f"field `{name}`: expected shape ({wanted}), received {dims}")
    if dims[0] > max_rows:
        raise InvalidRequest(f"field `{name}`: {dims[0]} rows; at most {max_rows} are allowed")
    if any(d is not None and d != got for d, got in zip(shape, dims, strict=True)):
        raise InvalidRequest(f"field `{name}`: expected shape ({wanted}), received {dims}")
    count = math.prod(dims)
    if dtype == types_pb2.DT_FLOAT:
        content = tensor.tensor_content
        if content:
            if len(content) != count * _FLOAT32.itemsize:
                raise InvalidRequest(
                    f"field `{name}`: shape {dims} needs {count * 4} bytes of "
                    f"tensor_content, received {len(content)}"
                )
            return np.frombuffer(content, _FLOAT32).reshape(dims)
        if len(tensor.float_val) != count:
            raise InvalidRequest(
                f"field `{name}`: shape {dims} needs {count} float_val values, "
                f"received {len(tensor.float_val)}"
            )
        return np.array(tensor.float_val, np.float32).reshape(dims)
    if tensor.tensor_content:
        raise InvalidRequest(
            f"field `{name}`: send DT_STRING values in string_val, not tensor_content"
        )
    if len(tensor.string_val) != count:
        raise InvalidRequest(
            f"field `{name}`: shape {dims} needs {count} string_val values, "
            f"received {len(tensor.string_val)}"
        )
    array = np.empty(count, dtype=object)
    array[:] = tensor.string_val
    return array.reshape(dims)


def batch_from_request(predictor: Predictor, request: predict_pb2.PredictRequest) -> PackedBatch:
    """Validates a PredictRequest for `serving_default` (or empty name) or `packed`."""
    signature = request.model_spec.signature_name or "serving_default"
    inputs = request.inputs
    max_rows = predictor.config.max_rows
    if signature == "packed":
        widths = predictor.packed_widths
        unknown = sorted(set(inputs) - set(widths))
        if unknown:
            raise InvalidRequest(f"unknown input `{unknown[0]}` of signature `packed`")
        for name in widths:
            if name not in inputs:
                raise InvalidRequest(f"missing input `{name}` of signature `packed`")
        arrays = {
            name: to_array(name, inputs[name], _PACKED_DTYPES[name], (None, width), max_rows)
            for name, width in widths.items()
        }
        return predictor.check_packed(**arrays)
    if signature != "serving_default":
        raise InvalidRequest(f"unknown signature `{signature}`; served: {list(SIGNATURES)}")
    columns = {}
    for name, tensor in inputs.items():
        if name not in predictor.spec.field_names:
            raise InvalidRequest(f"unknown field `{name}`")
        dtype = _DTYPES[predictor.raw_type(name).name]
        columns[name] = to_array(name, tensor, dtype, (None,), max_rows)
    return predictor.pack_columns(columns)


def probability_tensor(scores: np.ndarray) -> tensor_pb2.TensorProto:
    return tf.make_tensor_proto(np.asarray(scores, np.float32))


def warmup_requests(version: Path) -> Iterator[predict_pb2.PredictRequest]:
    """The PredictRequests of `<version>/assets.extra/tf_serving_warmup_requests` (TF Serving's
    format: a TFRecord of PredictionLog), none when the file is absent."""
    path = version / WARMUP_FILE
    if not path.is_file():
        return
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if log.HasField("predict_log"):
            yield log.predict_log.request
