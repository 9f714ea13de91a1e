"""TF Serving's gRPC PredictRequest -> the predictor's PackedBatch, without a model or a server:
tensors built by TensorFlow's own `make_tensor_proto` give the batch written out by hand, the
same one the REST JSON gives (tests/serving/test_json_tensors.py).

    row  n1    c1    m1          n2       categorical = (c1, m1): DT_STRING -> bytes
    0    1.5   "a"   "x|y"       NaN      numeric     = (n1, n2): DT_FLOAT  -> float32
    1    -2    ""    "é|z"       7
"""

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from serving.json_tensors import parse_body, predict_batch
from serving.predictor import InvalidRequest, PackedBatch, Predictor, PredictorConfig
from serving.tensors import batch_from_request, probability_tensor, warmup_requests
from unified_embedding.contract.artifacts import WARMUP_FILE
from unified_embedding.contract.schemas import from_short_form

SPEC = from_short_form(
    {
        "columns": ["y", "n1", "c1", "m1", "n2"],
        "label": "y",
        "numeric": ["n1", "n2"],
        "multi_valued": {"m1": "|"},
    }
)
CATEGORICAL = np.array([[b"a", b"x|y"], [b"", "é|z".encode()]], dtype=object)
NUMERIC = np.array([[1.5, math.nan], [-2.0, 7.0]], dtype=np.float32)
COLUMNS = {
    "n1": np.array([1.5, -2], np.float32),
    "c1": [b"a", b""],
    "m1": [b"x|y", "é|z".encode()],
    "n2": np.array([math.nan, 7], np.float32),
}


def predictor(max_rows: int = 4) -> Predictor:
    """A predictor whose model is never called: checking requests needs only the spec."""
    loaded = SimpleNamespace(signatures={"packed": None, "attention": None})
    return Predictor(Path("export/1"), SPEC, loaded, PredictorConfig(max_rows=max_rows))


def request(inputs: dict, signature: str = "") -> predict_pb2.PredictRequest:
    """A PredictRequest of `inputs` (TensorProtos, or values for `make_tensor_proto`)."""
    message = predict_pb2.PredictRequest()
    message.model_spec.name = "model"
    message.model_spec.signature_name = signature
    for name, value in inputs.items():
        proto = value if isinstance(value, tensor_pb2.TensorProto) else tf.make_tensor_proto(value)
        message.inputs[name].CopyFrom(proto)
    return message


def float_vals(values: list[float], dims: list[int]) -> tensor_pb2.TensorProto:
    """Floats as `float_val` (what clients other than TensorFlow's usually send)."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=values)


def assert_batch(batch: PackedBatch) -> None:
    assert batch.categorical.dtype == object and batch.categorical.shape == (2, 2)
    assert batch.numeric.dtype == np.float32 and batch.numeric.shape == (2, 2)
    assert batch.categorical.tolist() == CATEGORICAL.tolist()
    np.testing.assert_array_equal(batch.numeric, NUMERIC)


@pytest.mark.parametrize("signature", ["", "serving_default"])
def test_one_tensor_per_field(signature: str) -> None:
    assert_batch(batch_from_request(predictor(), request(COLUMNS, signature)))


def test_floats_as_float_val_or_tensor_content_are_the_same() -> None:
    inputs = {**COLUMNS, "n1": float_vals([1.5, -2], [2]), "n2": float_vals([math.nan, 7], [2])}
    assert_batch(batch_from_request(predictor(), request(inputs)))


def test_packed_signature() -> None:
    packed = {"categorical": CATEGORICAL.astype(bytes), "numeric": NUMERIC}
    assert_batch(batch_from_request(predictor(), request(packed, "packed")))
    as_float_val = {**packed, "numeric": float_vals(NUMERIC.ravel().tolist(), [2, 2])}
    assert_batch(batch_from_request(predictor(), request(as_float_val, "packed")))


def test_grpc_and_rest_give_the_same_batch() -> None:
    rest, _ = predict_batch(
        predictor(),
        parse_body(
            b'{"inputs": {"n1": [1.5, -2], "c1": ["a", ""], "m1": ["x|y", {"b64": "w6l8eg=="}],'
            b' "n2": [NaN, 7]}}'
        ),
    )
    grpc = batch_from_request(predictor(), request(COLUMNS))
    # REST keeps JSON strings as str and b64 values as bytes; gRPC's string_val is bytes
    as_bytes = [[c.encode() if isinstance(c, str) else c for c in row] for row in rest.categorical]
    assert as_bytes == grpc.categorical.tolist()
    np.testing.assert_array_equal(rest.numeric, grpc.numeric)


WRONG = [
    (
        {**COLUMNS, "n1": [b"1.5", b"-2"]},
        "",
        r"field `n1`: expected a DT_FLOAT tensor, received DT_STRING",
    ),
    (
        {**COLUMNS, "c1": np.array([1.0, 2.0], np.float32)},
        "",
        "field `c1`: expected a DT_STRING tensor",
    ),
    (
        {**COLUMNS, "n1": np.ones((2, 1), np.float32)},
        "",
        r"field `n1`: expected shape \(rows,\), received \[2, 1\]",
    ),
    ({**COLUMNS, "n2": np.ones(3, np.float32)}, "", "fields have different numbers of rows"),
    (
        {**COLUMNS, "n1": float_vals([1.5], [2])},
        "",
        "field `n1`: shape \\[2\\] needs 2 float_val values, received 1",
    ),
    (
        {**COLUMNS, "n1": float_vals([1.0] * 5, [5])},
        "",
        "field `n1`: 5 rows; at most 4 are allowed",
    ),
    ({**COLUMNS, "extra": [b"a", b"b"]}, "", "unknown field `extra`"),
    ({k: v for k, v in COLUMNS.items() if k != "c1"}, "", "missing field `c1`"),
    ({**COLUMNS, "n2": np.array([1.0, np.inf], np.float32)}, "", "row 1: field `n2`: received inf"),
    (COLUMNS, "classify", r"unknown signature `classify`; served: \['serving_default', 'packed'\]"),
    (
        {"categorical": CATEGORICAL.astype(bytes)},
        "packed",
        "missing input `numeric` of signature `packed`",
    ),
    (
        {"categorical": CATEGORICAL.astype(bytes), "numeric": NUMERIC, "extra": NUMERIC},
        "packed",
        "unknown input `extra` of signature `packed`",
    ),
    (
        {"categorical": CATEGORICAL.astype(bytes), "numeric": np.ones((2, 3), np.float32)},
        "packed",
        r"field `numeric`: expected shape \(rows, 2\), received \[2, 3\]",
    ),
]


@pytest.mark.parametrize(("inputs", "signature", "message"), WRONG)
def test_wrong_requests_are_refused_naming_the_input(
    inputs: dict, signature: str, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        batch_from_request(predictor(), request(inputs, signature))


def test_a_declared_shape_is_checked_against_the_values_sent() -> None:
    # A few bytes declaring a (4, 100000) string tensor: refused before any array is made.
    huge = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_STRING,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=4)]
        ),
        string_val=[b"a"],
    )
    with pytest.raises(
        InvalidRequest, match=r"field `c1`: shape \[4\] needs 4 string_val values, received 1"
    ):
        batch_from_request(predictor(), request({**COLUMNS, "c1": huge}))
    content = tf.make_tensor_proto(np.ones(2, np.float32))
    content.tensor_content = content.tensor_content[:-1]
    with pytest.raises(InvalidRequest, match="needs 8 bytes of tensor_content, received 7"):
        batch_from_request(predictor(), request({**COLUMNS, "n1": content}))


def test_probability_tensor_round_trips() -> None:
    scores = np.array([0.1, 0.5, 1 / 3], np.float64)
    proto = probability_tensor(scores)
    assert proto.dtype == types_pb2.DT_FLOAT
    np.testing.assert_array_equal(tf.make_ndarray(proto), scores.astype(np.float32))


def test_warmup_requests_are_read_from_tf_servings_file(tmp_path: Path) -> None:
    assert list(warmup_requests(tmp_path)) == []  # no file: no warm-up
    path = tmp_path / WARMUP_FILE
    path.parent.mkdir(parents=True)
    sent = [
        request(COLUMNS),
        request({"categorical": CATEGORICAL.astype(bytes), "numeric": NUMERIC}, "packed"),
    ]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for one in sent:
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=one)
            )
            writer.write(log.SerializeToString())
        writer.write(prediction_log_pb2.PredictionLog().SerializeToString())  # not a predict log
    assert list(warmup_requests(tmp_path)) == sent
