"""Fuzzing: malformed requests (ours, TF Serving's, raw bytes, REST JSON) are each answered with
a proper status, never a crash, and the server still serves good requests afterwards."""

import json
import math

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from protos import prediction_pb2, prediction_pb2_grpc
from serving.client import RankingClient, row_proto, rows_from_file
from serving.examples import batch_from_input
from serving.json_tensors import examples_input, parse_body, predict_batch
from serving.predictor import InvalidRequest, Predictor

FUZZ = settings(
    max_examples=250, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
ANSWERED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}

names = st.one_of(
    st.sampled_from(["I1", "I13", "C1", "C26", "C99", "", "label"]), st.text(max_size=8)
)
values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.floats(width=32),
    st.sampled_from([math.nan, math.inf, "", "\x00", "a" * 5000]),
)
edits = st.lists(st.tuples(st.sampled_from(["drop", "set"]), names, values), max_size=4)


@pytest.fixture(scope="module")
def good_row(running_server, exported_model) -> dict:  # type: ignore[no-untyped-def]
    with RankingClient(running_server.target) as client:
        return rows_from_file(exported_model.rows_file, "criteo", client.model_info())[0]


def _code(call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    try:
        call(request, timeout=30)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def _row(base: dict, changes: list) -> prediction_pb2.Row:
    row = prediction_pb2.Row()
    for name, value in base.items():
        row.features[name].CopyFrom(row_proto({name: value}).features[name])
    for action, name, value in changes:
        if action == "drop":
            row.features.pop(name, None)
        elif value is None:
            row.features[name].Clear()  # a Value with nothing set
        else:
            row.features[name].CopyFrom(row_proto({name: value}).features[name])
    return row


def test_fuzzed_score_requests(running_server, good_row) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(running_server.target) as channel:
        score = prediction_pb2_grpc.RankingStub(channel).Score

        @FUZZ
        @given(
            rows=st.lists(edits, max_size=3),
            name=st.sampled_from(["", "default", "other"]),
            version=st.sampled_from([0, 0, 1, -3]),
            top_k=st.sampled_from([0, 0, 2, -1, 65, 2**31 - 1]),
        )
        def fuzz(rows: list, name: str, version: int, top_k: int) -> None:
            request = prediction_pb2.ScoreRequest(
                model_spec=prediction_pb2.ModelSpec(name=name, version=version),
                rows=[_row(good_row, changes) for changes in rows],
                explain_top_k=top_k,
            )
            assert _code(score, request) in ANSWERED
            calls.append(1)

        calls: list = []
        fuzz()
        assert len(calls) >= 250
        assert (
            len(
                score(
                    prediction_pb2.ScoreRequest(rows=[row_proto(good_row)]), timeout=10
                ).probabilities
            )
            == 1
        )


dtypes = st.sampled_from(
    [types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_DOUBLE, 0, 999]
)
dims = st.lists(st.sampled_from([-1, 0, 1, 2, 3, 13, 26, 2**40]), max_size=3)


@st.composite
def tensors(draw: st.DrawFn) -> tensor_pb2.TensorProto:
    tensor = tensor_pb2.TensorProto(
        dtype=draw(dtypes),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in draw(dims)],
            unknown_rank=draw(st.booleans()) and draw(st.booleans()),
        ),
    )
    tensor.string_val.extend(draw(st.lists(st.binary(max_size=8), max_size=4)))
    tensor.float_val.extend(draw(st.lists(st.floats(width=32), max_size=4)))
    tensor.tensor_content = draw(st.binary(max_size=16))
    return tensor


def test_fuzzed_tf_serving_requests(running_server) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(running_server.target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict

        @FUZZ
        @given(
            inputs=st.dictionaries(
                st.one_of(names, st.sampled_from(["categorical", "numeric"])), tensors(), max_size=4
            ),
            signature=st.sampled_from(["", "serving_default", "packed", "attention", "nope"]),
            name=st.sampled_from(["", "default", "other"]),
        )
        def fuzz(inputs: dict, signature: str, name: str) -> None:
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.signature_name = name, signature
            for key, tensor in inputs.items():
                request.inputs[key].CopyFrom(tensor)
            assert _code(predict, request) in ANSWERED
            calls.append(1)

        calls: list = []
        fuzz()
        assert len(calls) >= 250


def test_fuzzed_bytes(running_server, good_row) -> None:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(running_server.target) as channel:
        raw = channel.unary_unary("/unified_embedding.serving.v1.Ranking/Score")

        @settings(FUZZ, max_examples=250)
        @given(payload=st.binary(max_size=200))
        def fuzz(payload: bytes) -> None:
            assert _code(raw, payload) in ANSWERED
            calls.append(1)

        calls: list = []
        fuzz()
        assert len(calls) >= 250
        score = prediction_pb2_grpc.RankingStub(channel).Score
        response = score(prediction_pb2.ScoreRequest(rows=[row_proto(good_row)] * 3), timeout=10)
        assert len(response.probabilities) == 3


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(),
    st.integers(),
    st.sampled_from([10**400, -(10**39), 1e39, "a" * 1001, {"b64": "%%"}, {"b64": "YQ=="}]),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(names, children, max_size=3)
    ),
    max_leaves=12,
)


def test_fuzzed_rest_json_is_taken_or_refused_as_invalid(exported_model, good_row) -> None:  # type: ignore[no-untyped-def]
    """Any JSON body (and bodies that are not JSON) either makes a batch or raises
    InvalidRequest (400); anything else would answer 500."""
    predictor = Predictor.load(exported_model.version)

    def answer(body: bytes, verb: str) -> None:
        try:
            request = parse_body(body)
            if verb == "predict":
                predict_batch(predictor, request)
            else:
                batch_from_input(predictor, examples_input(request))
        except InvalidRequest:
            pass

    @FUZZ
    @given(
        key=st.sampled_from(["instances", "inputs", "examples", "context", "signature_name"]),
        value=json_values,
        edits=st.dictionaries(names, json_values, max_size=3),
        verb=st.sampled_from(["predict", "regress"]),
        signature=st.sampled_from([None, "", "packed", "serving_default", 7]),
    )
    def fuzz(key: str, value: object, edits: dict, verb: str, signature: object) -> None:  # type: ignore[type-arg]
        bodies = [
            {key: value},
            {"instances": [{**good_row, **edits}]},
            {"inputs": {k: [v, v] for k, v in {**good_row, **edits}.items()}},
            {"examples": [{**good_row, **edits}], "context": edits},
        ]
        for body in bodies:
            if signature is not None:
                body["signature_name"] = signature
            answer(json.dumps(body).encode(), verb)
        calls.append(1)

    calls: list = []
    fuzz()
    assert len(calls) >= 250
    for raw in (b"[" * 100_000, b"{" * 50_000, b"1" * 5000, b"\xff", b"", b"NaN", b"[1e999]"):
        answer(raw, "predict")
