"""TensorFlow Serving's `PredictRequest` <-> the predictor's batches (no gRPC here).

`serving_default` requests carry one 1-D tensor per field (DT_STRING for categorical fields,
DT_FLOAT for numeric ones); `packed` requests carry `categorical` (rows, categorical fields)
DT_STRING and `numeric` (rows, numeric fields) DT_FLOAT. Shapes are checked before any value
is decoded, so a request cannot make the server allocate more than its own size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.predictor import InvalidRequest, PackedBatch, Predictor

SIGNATURES = ("serving_default", "packed")
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
_DTYPES = {types_pb2.DT_STRING: object, types_pb2.DT_FLOAT: np.float32}


def _dtype_name(dtype: int) -> str:
    return types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values() else str(dtype)


def to_array(
    name: str, tensor: tensor_pb2.TensorProto, dtype: int, rank: int, max_rows: int
) -> np.ndarray:
    """A TensorProto of `dtype` and `rank` as NumPy; InvalidRequest names the input otherwise."""
    if tensor.dtype != dtype:
        raise InvalidRequest(
            f"field `{name}`: expected a {_dtype_name(dtype)} tensor, "
            f"received {_dtype_name(tensor.dtype)}"
        )
    dims = [d.size for d in tensor.tensor_shape.dim]
    if len(dims) != rank or any(d < 0 for d in dims) or tensor.tensor_shape.unknown_rank:
        raise InvalidRequest(
            f"field `{name}`: expected a tensor of rank {rank}, received shape {dims}"
        )
    if dims[0] > max_rows or (rank == 2 and dims[1] > 10_000):
        raise InvalidRequest(f"field `{name}`: {dims[0]} rows; at most {max_rows} are allowed")
    try:
        array = tf.make_ndarray(tensor)
    except (ValueError, TypeError) as e:
        raise InvalidRequest(f"field `{name}`: values do not fill shape {dims}: {e}") from None
    return array.astype(_DTYPES[dtype], copy=False)


def batch_from_request(predictor: Predictor, request: predict_pb2.PredictRequest) -> PackedBatch:
    """Validates a PredictRequest for `serving_default` (or empty name) or `packed`."""
    signature = request.model_spec.signature_name or "serving_default"
    inputs = request.inputs
    max_rows = predictor.config.max_rows
    if signature == "packed":
        unknown = sorted(set(inputs) - {"categorical", "numeric"})
        if unknown:
            raise InvalidRequest(f"unknown input `{unknown[0]}` of signature `packed`")
        for name in ("categorical", "numeric"):
            if name not in inputs:
                raise InvalidRequest(f"missing input `{name}` of signature `packed`")
        return predictor.check_packed(
            to_array("categorical", inputs["categorical"], types_pb2.DT_STRING, 2, max_rows),
            to_array("numeric", inputs["numeric"], types_pb2.DT_FLOAT, 2, max_rows),
        )
    if signature != "serving_default":
        raise InvalidRequest(f"unknown signature `{signature}`; served: {list(SIGNATURES)}")
    numeric = set(predictor.numeric_names)
    columns = {}
    for name, tensor in inputs.items():
        if name not in predictor.spec.field_names:
            raise InvalidRequest(f"unknown field `{name}`")
        dtype = types_pb2.DT_FLOAT if name in numeric else types_pb2.DT_STRING
        columns[name] = to_array(name, tensor, dtype, 1, max_rows)
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
