"""TF Serving's Classify, Regress and MultiInference over tf.train.Examples: context features
merged into each example (the example winning a clash) score as Predict scores the merged rows,
and as the export's own `from_examples` signature scores TF Serving's serialized context +
example; every bad input gets INVALID_ARGUMENT naming the feature and the value.

The request (criteo model; context = C1, C2, I1; example 2 gives its own C1):

    context    C1=row0  C2=row0  I1=row0
    example i  every other field of row i (absent when missing; int64 for I2, float elsewhere)
"""

import math
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.examples import batch_from_input
from serving.predictor import InvalidRequest, PredictorConfig
from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import FieldSpec
from unified_embedding.rows.reader import read_rows

CONTEXT = ("C1", "C2", "I1")
ROWS = 8


def _feature(value: object, ints: bool = False) -> feature_pb2.Feature:
    if isinstance(value, float):
        if ints and value == int(value):
            return feature_pb2.Feature(int64_list=feature_pb2.Int64List(value=[int(value)]))
        return feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[value]))
    return feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[str(value).encode()]))


def _features(row: dict[str, object], ints: bool) -> example_pb2.Example:
    example = example_pb2.Example()
    for name, value in row.items():
        if isinstance(value, float) and math.isnan(value):
            continue  # absent = missing
        example.features.feature[name].CopyFrom(_feature(value, ints and name == "I2"))
    return example


class Request:
    """Rows of the held-out file as context + examples, and the same rows merged."""

    def __init__(self, exported_model, ints: bool) -> None:  # type: ignore[no-untyped-def]
        raw = read_rows(criteo(), exported_model.rows_file).take(np.arange(ROWS))
        numeric = {f.name for f in criteo().numeric_fields}
        rows = [
            {
                name: (float(values[i]) if values[i] != "" else math.nan)
                if name in numeric
                else str(values[i])
                for name, values in raw.columns.items()
            }
            for i in range(ROWS)
        ]
        context = {k: rows[0][k] for k in CONTEXT}
        own = [{k: v for k, v in row.items() if k not in CONTEXT} for row in rows]
        own[2]["C1"] = rows[2]["C1"] + "x"  # the example wins over the context
        self.merged = [{**context, **row} for row in own]
        self.input = input_pb2.Input()
        listed = self.input.example_list_with_context
        listed.context.CopyFrom(_features(context, ints))
        for row in own:
            listed.examples.append(_features(row, ints))

    def predict_request(self) -> predict_pb2.PredictRequest:
        request = predict_pb2.PredictRequest()
        for name in self.merged[0]:
            values = [row[name] for row in self.merged]
            array = (
                np.array(values, np.float32)
                if isinstance(values[0], float)
                else np.array([str(v).encode() for v in values], object)
            )
            request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        return request


@pytest.fixture(scope="module")
def stub(running_server):  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(running_server.target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _predict(stub, request: Request) -> np.ndarray:  # type: ignore[no-untyped-def]
    response = stub.Predict(request.predict_request(), timeout=10)
    return tf.make_ndarray(response.outputs["probability"])


def test_classify_regress_and_multi_inference_equal_predict_over_merged_rows(
    stub, exported_model
) -> None:  # type: ignore[no-untyped-def]
    request = Request(exported_model, ints=True)
    expected = _predict(stub, request)
    assert request.merged[2]["C1"] != request.merged[0]["C1"]

    classified = stub.Classify(
        classification_pb2.ClassificationRequest(input=request.input), timeout=10
    )
    assert classified.model_spec.signature_name == "serving_default"
    assert classified.model_spec.version.value == int(exported_model.version.name)
    got = classified.result.classifications
    assert [[c.label for c in g.classes] for g in got] == [["0", "1"]] * ROWS
    np.testing.assert_allclose([g.classes[1].score for g in got], expected, rtol=1e-5)
    np.testing.assert_allclose([g.classes[0].score for g in got], 1 - expected, atol=1e-6)

    regressed = stub.Regress(regression_pb2.RegressionRequest(input=request.input), timeout=10)
    values = [r.value for r in regressed.result.regressions]
    np.testing.assert_allclose(values, expected, rtol=1e-5)

    multi = inference_pb2.MultiInferenceRequest(input=request.input)
    for method, signature in (("classify", "classification"), ("regress", "regression")):
        task = multi.tasks.add(method_name=f"tensorflow/serving/{method}")
        task.model_spec.signature_name = signature
    results = stub.MultiInference(multi, timeout=10).results
    assert [r.model_spec.signature_name for r in results] == ["classification", "regression"]
    np.testing.assert_allclose(
        [c.classes[1].score for c in results[0].classification_result.classifications],
        expected,
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        [r.value for r in results[1].regression_result.regressions], expected, rtol=1e-5
    )
    plain = input_pb2.Input()  # an ExampleList of the merged rows answers the same
    plain.example_list.examples.extend(_features(row, ints=False) for row in request.merged)
    regressed = stub.Regress(regression_pb2.RegressionRequest(input=plain), timeout=10)
    np.testing.assert_allclose([r.value for r in regressed.result.regressions], expected, rtol=1e-5)


def test_regress_equals_the_exports_from_examples_signature(stub, exported_model) -> None:  # type: ignore[no-untyped-def]
    request = Request(exported_model, ints=False)  # from_examples parses float_list only
    listed = request.input.example_list_with_context
    serialized = [
        listed.context.SerializeToString() + e.SerializeToString() for e in listed.examples
    ]  # as TF Serving feeds `from_examples`
    loaded = tf.saved_model.load(str(exported_model.version))
    oracle = loaded.signatures["from_examples"](examples=tf.constant(serialized))["probability"]
    regressed = stub.Regress(regression_pb2.RegressionRequest(input=request.input), timeout=10)
    np.testing.assert_allclose(
        [r.value for r in regressed.result.regressions], oracle.numpy(), rtol=1e-5
    )


def _call(method, request) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as e:
        method(request, timeout=10)
    return e.value


def test_error_codes(stub, exported_model) -> None:  # type: ignore[no-untyped-def]
    good = Request(exported_model, ints=True).input
    invalid = grpc.StatusCode.INVALID_ARGUMENT

    def examples(**features: feature_pb2.Feature) -> input_pb2.Input:
        bad = input_pb2.Input()
        bad.CopyFrom(good)
        for name, feature in features.items():
            bad.example_list_with_context.examples[1].features.feature[name].CopyFrom(feature)
        return bad

    cases = [
        (
            stub.Classify,
            classification_pb2.ClassificationRequest(input=good),
            "packed",
            invalid,
            "signature `packed` does not answer classify",
        ),
        (
            stub.Regress,
            regression_pb2.RegressionRequest(input=good),
            "classification",
            invalid,
            "signature `classification` does not answer regress",
        ),
        (
            stub.Regress,
            regression_pb2.RegressionRequest(input=examples(I3=_feature("abc"))),
            "",
            invalid,
            "example 1: feature `I3`: expected a float_list or an int64_list, received a "
            "bytes_list [b'abc']",
        ),
        (
            stub.Classify,
            classification_pb2.ClassificationRequest(
                input=examples(
                    C5=feature_pb2.Feature(bytes_list=feature_pb2.BytesList(value=[b"a", b"b"]))
                )
            ),
            "",
            invalid,
            "example 1: feature `C5`: expected one value, received 2: [b'a', b'b']",
        ),
        (
            stub.Classify,
            classification_pb2.ClassificationRequest(input=examples(C5=_feature(2.5))),
            "",
            invalid,
            "example 1: feature `C5`: expected a bytes_list, received a float_list [2.5]",
        ),
        (
            stub.Regress,
            regression_pb2.RegressionRequest(
                input=examples(
                    I4=feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[1, 2]))
                )
            ),
            "",
            invalid,
            "example 1: feature `I4`: expected one number, received 2",
        ),
        (
            stub.Regress,
            regression_pb2.RegressionRequest(input=examples(I4=_feature(math.inf))),
            "",
            invalid,
            "field `I4`: received inf",
        ),
        (stub.Regress, regression_pb2.RegressionRequest(), "", invalid, "`input` is empty"),
        (
            stub.Regress,
            regression_pb2.RegressionRequest(
                input=input_pb2.Input(example_list=input_pb2.ExampleList())
            ),
            "",
            invalid,
            "`input.example_list` has no examples",
        ),
    ]
    for method, request, signature, code, message in cases:
        request.model_spec.signature_name = signature
        error = _call(method, request)
        assert error.code() == code, message
        assert message in error.details(), error.details()
    for name, label, message in (
        ("nobody", "", "unknown model `nobody`"),
        ("", "stable", "no version label `stable`"),
    ):
        request = regression_pb2.RegressionRequest(input=good)
        request.model_spec.name, request.model_spec.version_label = name, label
        error = _call(stub.Regress, request)
        assert error.code() == grpc.StatusCode.NOT_FOUND and message in error.details()


def test_multi_inference_errors(stub, exported_model) -> None:  # type: ignore[no-untyped-def]
    good = Request(exported_model, ints=True).input
    cases = [
        ([], "`tasks` is empty"),
        (
            [("a", "tensorflow/serving/classify", ""), ("b", "tensorflow/serving/regress", "")],
            "every task should name the same model. Received: ['a', 'b']",
        ),
        ([("", "tensorflow/serving/predict", "")], "task `method_name` should be one of"),
        (
            [("", "tensorflow/serving/classify", ""), ("", "tensorflow/serving/classify", "")],
            "every task should name a different signature",
        ),
    ]
    for tasks, message in cases:
        request = inference_pb2.MultiInferenceRequest(input=good)
        for name, method, signature in tasks:
            task = request.tasks.add(method_name=method)
            task.model_spec.name, task.model_spec.signature_name = name, signature
        error = _call(stub.MultiInference, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, message
        assert message in error.details(), error.details()


class _Columns:
    """Stands in for a Predictor: hands back the columns `batch_from_input` built."""

    def __init__(self, *fields: FieldSpec) -> None:
        self.spec, self.config = SimpleNamespace(fields=fields), PredictorConfig(max_rows=3)
        self.numeric_names = tuple(f.name for f in fields if f.kind == "numeric")

    def pack_columns(self, columns):  # type: ignore[no-untyped-def]
        return columns


def test_multi_valued_fields_take_several_values_or_one_delimited_string() -> None:
    predictor = _Columns(
        FieldSpec("genres", kind="multi_valued", separator="|"),
        FieldSpec("city"),
        FieldSpec("age", kind="numeric"),
    )
    request = input_pb2.Input()
    listed = request.example_list_with_context
    listed.context.features.feature["city"].CopyFrom(_feature("paris"))
    for genres, age in (([b"a", b"b"], 3.0), ([b"c|d"], None), ([], None)):
        example = listed.examples.add()
        example.features.feature["genres"].bytes_list.value.extend(genres)
        example.features.feature["unknown"].CopyFrom(_feature("ignored"))
        if age is not None:
            example.features.feature["age"].CopyFrom(_feature(age, ints=True))
    columns = batch_from_input(predictor, request)  # type: ignore[arg-type]
    assert list(columns["genres"]) == [b"a|b", b"c|d", b""]
    assert list(columns["city"]) == [b"paris"] * 3
    np.testing.assert_array_equal(columns["age"], [3.0, np.nan, np.nan])
    listed.examples.add()
    with pytest.raises(InvalidRequest, match="the request has 4 examples; at most 3"):
        batch_from_input(predictor, request)  # type: ignore[arg-type]


def test_tensorflows_parse_and_the_walk_agree_where_both_apply() -> None:
    from serving.examples import _parsed, _walked, examples_of

    predictor = _Columns(
        FieldSpec("genres", kind="multi_valued", separator="|"),
        FieldSpec("city"),
        FieldSpec("age", kind="numeric"),
    )
    request = input_pb2.Input()
    listed = request.example_list_with_context
    listed.context.features.feature["city"].CopyFrom(_feature("paris"))
    listed.context.features.feature["age"].CopyFrom(_feature(7.0))
    for genres, city in (("a|b", None), ("", "rome"), (None, None)):
        example = listed.examples.add()
        if genres is not None:
            example.features.feature["genres"].CopyFrom(_feature(genres))
        if city is not None:
            example.features.feature["city"].CopyFrom(_feature(city))  # wins over the context
    serialized, context, examples = examples_of(request)
    parsed = _parsed(predictor.spec.fields, serialized)
    assert parsed is not None
    walked = _walked(predictor, context, examples)  # type: ignore[arg-type]
    assert list(parsed["city"]) == list(walked["city"]) == [b"paris", b"rome", b"paris"]
    assert list(parsed["genres"]) == list(walked["genres"]) == [b"a|b", b"", b""]
    np.testing.assert_array_equal(parsed["age"], walked["age"])
    np.testing.assert_array_equal(parsed["age"], [7.0] * 3)
