"""Requests that used to hurt the server: shapes that do not match the bytes sent (memory
amplification), infinities, malformed ranking requests; odd version folders. Each is answered
INVALID_ARGUMENT naming the field (and row), and the server keeps serving."""

import logging
import math
import shutil
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from protos import prediction_pb2, prediction_pb2_grpc
from serving.client import (
    ClientConfig,
    RankingClient,
    column_proto,
    ranking_request,
    row_proto,
    rows_from_file,
)
from serving.model_manager import ManagerConfig, scan_versions
from serving.predictor import InconsistentModel, Predictor
from serving.server import BackgroundServer, ServerConfig
from unified_embedding.exported.writer import parse_version


@pytest.fixture(scope="module")
def rows(running_server, exported_model) -> list:  # type: ignore[no-untyped-def]
    with RankingClient(running_server.target) as client:
        return rows_from_file(exported_model.rows_file, "criteo", client.model_info())[:8]


def _memory_kb() -> dict[str, int]:
    """This process's resident and peak resident memory (the server runs in it)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def _declared(dtype: int, dims: list[int], content: bytes = b"") -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=content)


def _error(call, request) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as e:
        call(request, timeout=30)
    return e.value.code(), e.value.details()


def test_declared_shapes_are_checked_before_anything_is_allocated(running_server, rows) -> None:  # type: ignore[no-untyped-def]
    packed = predict_pb2.PredictRequest()
    packed.model_spec.signature_name = "packed"
    # 77 bytes on the wire that `tf.make_ndarray` would expand to 41M strings
    packed.inputs["categorical"].CopyFrom(_declared(types_pb2.DT_STRING, [4096, 10000]))
    packed.inputs["numeric"].CopyFrom(_declared(types_pb2.DT_FLOAT, [4096, 13], b"\0" * 8))
    narrow = predict_pb2.PredictRequest()
    narrow.CopyFrom(packed)
    narrow.inputs["categorical"].CopyFrom(_declared(types_pb2.DT_STRING, [4096, 26]))
    short = predict_pb2.PredictRequest()
    short.CopyFrom(narrow)
    short.inputs["categorical"].string_val.extend([b"x"] * 4096 * 26)
    default = predict_pb2.PredictRequest()
    default.inputs["I1"].CopyFrom(_declared(types_pb2.DT_FLOAT, [5000], b"\0" * 4))
    cases = [
        (packed, "field `categorical`: expected shape (rows, 26), received [4096, 10000]"),
        (
            narrow,
            "field `categorical`: shape [4096, 26] needs 106496 string_val values, received 0",
        ),
        (
            short,
            "field `numeric`: shape [4096, 13] needs 212992 bytes of tensor_content, received 8",
        ),
        (default, "field `I1`: 5000 rows; at most 4096 are allowed"),
    ]
    before = _memory_kb()
    with grpc.insecure_channel(running_server.target) as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        answers: list = []
        threads = [
            threading.Thread(target=lambda r=r: answers.append(_error(predict, r)))
            for r in [packed] * 4
        ]  # four at once took a server from 1.7 to 3.7 GB
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert [code for code, _ in answers] == [grpc.StatusCode.INVALID_ARGUMENT] * 4
        for request, message in cases:
            code, details = _error(predict, request)
            assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, details
        after = _memory_kb()
        assert after["VmHWM"] - before["VmHWM"] < 64 * 1024, (before, after)
        assert after["VmRSS"] - before["VmRSS"] < 64 * 1024, (before, after)
        request = prediction_pb2.ScoreRequest(rows=[row_proto(rows[0])])
        assert (
            len(prediction_pb2_grpc.RankingStub(channel).Score(request, timeout=10).probabilities)
            == 1
        )


def test_infinities_are_refused_on_both_apis(running_server, rows) -> None:  # type: ignore[no-untyped-def]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    with grpc.insecure_channel(running_server.target) as channel:
        score = prediction_pb2_grpc.RankingStub(channel).Score
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        infinite_rows = [dict(r) for r in rows[:3]]
        infinite_rows[1]["I4"] = math.inf
        candidates = {
            k: np.array(v, np.float32 if isinstance(v[0], float) else object)
            for k, v in columns.items()
            if k != "C1"
        }
        candidates["I3"][5] = -math.inf
        without_i3 = {k: v for k, v in candidates.items() if k != "I3"}
        context_inf = ranking_request({"C1": "u", "I3": math.inf}, without_i3)
        default = predict_pb2.PredictRequest()
        for name, values in columns.items():
            array = np.array(values, np.float32 if isinstance(values[0], float) else object)
            if name == "I2":
                array[6] = math.inf
            default.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        packed = predict_pb2.PredictRequest()
        packed.model_spec.signature_name = "packed"
        numeric = np.stack([np.array(columns[f"I{i}"], np.float32) for i in range(1, 14)], 1)
        numeric[2, 12] = -math.inf
        categorical = np.stack([np.array(columns[f"C{i}"], object) for i in range(1, 27)], 1)
        packed.inputs["numeric"].CopyFrom(tf.make_tensor_proto(numeric))
        packed.inputs["categorical"].CopyFrom(tf.make_tensor_proto(categorical, tf.string))
        cases = [
            (
                score,
                prediction_pb2.ScoreRequest(rows=[row_proto(r) for r in infinite_rows]),
                "row 1: field `I4`: received inf",
            ),
            (
                score,
                ranking_request({"C1": "u"}, candidates),
                "candidates: row 5: field `I3`: received -inf",
            ),
            (score, context_inf, "context: field `I3`: received inf"),
            (predict, default, "row 6: field `I2`: received inf"),
            (predict, packed, "input `numeric`: row 2: field `I13`: received -inf"),
        ]
        for call, request, message in cases:
            code, details = _error(call, request)
            assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, details
            assert "finite" in details
        # NaN stays "missing" and scores
        missing = dict(rows[0], I4=math.nan)
        assert (
            len(
                score(
                    prediction_pb2.ScoreRequest(rows=[row_proto(missing)]), timeout=10
                ).probabilities
            )
            == 1
        )


def test_malformed_ranking_requests_name_the_field(running_server, rows) -> None:  # type: ignore[no-untyped-def]
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    others = {k: v for k, v in columns.items() if k != "C1"}
    both = ranking_request({"C1": "u"}, others)
    both.rows.append(row_proto(rows[0]))
    uneven = ranking_request({"C1": "u"}, {**others, "C2": columns["C2"][:3]})
    twice = ranking_request({"C1": "u", "C2": "v"}, others)
    wrong_kind = ranking_request({"C1": "u"}, {**others, "I5": [str(v) for v in columns["I5"]]})
    strings_for_number = ranking_request({"C1": 1.5}, others)
    unknown = ranking_request({"C1": "u", "C99": "x"}, others)
    no_values = ranking_request({"C1": "u"}, others)
    no_values.candidates["C2"].Clear()
    missing = ranking_request({}, others)
    cases = [
        (both, "give either `rows` or `context` + `candidates`, not both"),
        (uneven, "candidates: fields have different numbers of rows"),
        (twice, "field `C2` is given in both context and candidates"),
        (wrong_kind, "candidates: field `I5`: expected numbers, received strings"),
        (strings_for_number, "context: field `C1`: expected a string, received 1.5"),
        (unknown, "context: unknown field `C99`"),
        (no_values, "candidates: field `C2`: expected strings, received no values"),
        (missing, "missing field `C1`"),
    ]
    with grpc.insecure_channel(running_server.target) as channel:
        score = prediction_pb2_grpc.RankingStub(channel).Score
        for request, message in cases:
            code, details = _error(score, request)
            assert code == grpc.StatusCode.INVALID_ARGUMENT and message in details, details
        many = ranking_request({"C1": "u"}, {k: v * 600 for k, v in others.items()})  # 4800
        code, details = _error(score, many)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "4800 rows" in details
        assert column_proto([1, 2]).WhichOneof("kind") == "floats"
        assert len(score(ranking_request({"C1": "u"}, others), timeout=10).probabilities) == 8


def test_version_folder_names() -> None:
    assert [parse_version(n) for n in ("1", "0", "1700000000", str(2**63 - 1))] == [
        1,
        0,
        1700000000,
        2**63 - 1,
    ]
    odd = ("²", "99999999999999999999", str(2**63), "007", "v2", "", "-1", "1.5", "١٢")
    assert [parse_version(n) for n in odd] == [None] * len(odd)


def test_odd_version_folders_are_ignored_while_hot_reload_goes_on(
    exported_model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "export"
    shutil.copytree(exported_model.version, base / "100")
    for name in ("²", "99999999999999999999", "007", "v2"):
        shutil.copytree(exported_model.version, base / name)
    (base / ".200.partial").mkdir()  # an export in progress: hidden, not logged
    assert scan_versions(base) == ([100], sorted(["²", "99999999999999999999", "007", "v2"]))
    with pytest.raises(InconsistentModel, match="Received: `²`"):
        Predictor.load(base / "²")
    config = ServerConfig(ManagerConfig(base, poll_seconds=0.05), port=0, grace_seconds=2)
    with (
        caplog.at_level(logging.WARNING, logger="serving.model_manager"),
        BackgroundServer(config) as server,
        RankingClient(server.target, ClientConfig(retries=0)) as client,
    ):
        assert client.model_info().model_spec.version == 100
        shutil.copytree(exported_model.version, base / "200")
        deadline = time.monotonic() + 60
        while client.model_info().model_spec.version != 200:
            assert time.monotonic() < deadline, "version 200 was not picked up"
            time.sleep(0.05)
        rows = rows_from_file(exported_model.rows_file, "criteo", client.model_info())
        assert len(client.predict(rows[:4])) == 4
    ignored = [r.getMessage() for r in caplog.records if "ignoring folder" in r.getMessage()]
    assert sorted(m.split("'")[1] for m in ignored) == sorted(
        ["²", "99999999999999999999", "007", "v2"]
    ), ignored  # each logged once, though the folders were listed at every poll


def _example(row: dict) -> example_pb2.Example:  # type: ignore[type-arg]
    """A row as a tf.train.Example: numbers as a float_list, strings as a bytes_list."""
    example = example_pb2.Example()
    for name, value in row.items():
        feature = example.features.feature[name]
        if isinstance(value, float):
            feature.float_list.value.append(value)
        else:
            feature.bytes_list.value.append(value.encode() if isinstance(value, str) else value)
    return example


def _grpc_calls(channel: grpc.Channel, rows: list, cell: str) -> dict:  # type: ignore[type-arg]
    """Every gRPC API with `cell` as C3 of row 1 (ranking: candidate 1; context: C1), as
    (call, request) by name."""
    changed = [dict(r) for r in rows[:3]]
    changed[1]["C3"] = cell
    columns = {name: [r[name] for r in changed] for name in changed[0]}
    score = prediction_pb2_grpc.RankingStub(channel).Score
    service = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    default = predict_pb2.PredictRequest()
    for name, values in columns.items():
        array = np.array(values, np.float32 if isinstance(values[0], float) else object)
        default.inputs[name].CopyFrom(tf.make_tensor_proto(array))
    packed = predict_pb2.PredictRequest()
    packed.model_spec.signature_name = "packed"
    numeric = np.stack([np.array(columns[f"I{i}"], np.float32) for i in range(1, 14)], 1)
    categorical = np.stack([np.array(columns[f"C{i}"], object) for i in range(1, 27)], 1)
    packed.inputs["numeric"].CopyFrom(tf.make_tensor_proto(numeric))
    packed.inputs["categorical"].CopyFrom(tf.make_tensor_proto(categorical, tf.string))
    examples = input_pb2.Input(
        example_list=input_pb2.ExampleList(examples=[_example(r) for r in changed])
    )
    candidates = {k: v for k, v in columns.items() if k != "C1"}
    unchanged = {k: [r[k] for r in rows[:3]] for k in candidates}
    multi = inference_pb2.MultiInferenceRequest(input=examples)
    multi.tasks.add(method_name="tensorflow/serving/regress")
    return {
        "Score rows": (score, prediction_pb2.ScoreRequest(rows=[row_proto(r) for r in changed])),
        "Score candidates": (score, ranking_request({"C1": "u"}, candidates)),
        "Score context": (score, ranking_request({"C1": cell}, unchanged)),
        "Predict": (service.Predict, default),
        "Predict packed": (service.Predict, packed),
        "Classify": (service.Classify, classification_pb2.ClassificationRequest(input=examples)),
        "Regress": (service.Regress, regression_pb2.RegressionRequest(input=examples)),
        "MultiInference": (service.MultiInference, multi),
    }


def test_a_cell_over_the_models_limit_is_refused_on_every_grpc_api(running_server, rows) -> None:  # type: ignore[no-untyped-def]
    """A 10 MB categorical string used to be scored; preprocessing dead-letters cells over the
    spec's `max_field_chars` (1000 here). A cell of 1000 characters that are 2000 UTF-8 bytes
    (string_val, bytes_list) is taken: the limit counts characters, as preprocessing does."""
    assert rows[0]["C3"] and len(rows) >= 3
    limit = 1000
    huge = "x" * 10 * 2**20
    where = {
        "Score rows": "row 1: field `C3`",
        "Score candidates": "candidates: row 1: field `C3`",
        "Score context": "context: field `C1`",
        "Predict": "row 1: field `C3`",
        "Predict packed": "input `categorical`: row 1: field `C3`",
        "Classify": "row 1: field `C3`",
        "Regress": "row 1: field `C3`",
        "MultiInference": "row 1: field `C3`",
    }
    with grpc.insecure_channel(
        running_server.target, options=[("grpc.max_send_message_length", 32 * 2**20)]
    ) as channel:
        for api, (call, request) in _grpc_calls(channel, rows, huge).items():
            code, details = _error(call, request)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (api, details)
            expected = (
                f"{where[api]} has {len(huge)} characters; at most {limit} are "
                "allowed (the model's `max_field_chars`)"
            )
            assert details == expected, (api, details)
        for call, request in _grpc_calls(channel, rows, "é" * limit).values():
            call(request, timeout=30)  # 1000 characters, 2000 bytes: taken
        for api, (call, request) in _grpc_calls(channel, rows, "é" * (limit + 1)).items():
            code, details = _error(call, request)
            assert code == grpc.StatusCode.INVALID_ARGUMENT, (api, details)
            assert f"{where[api]} has {limit + 1} characters" in details, (api, details)


def test_a_cancelled_rpc_logs_one_short_line(  # type: ignore[no-untyped-def]
    running_server, rows, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    predict = Predictor.predict
    monkeypatch.setattr(Predictor, "predict", lambda self, b: gate.wait(60) and predict(self, b))
    registry = running_server.server.metrics.registry

    def count(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"method": "Score", **labels}) or 0

    received, cancelled = count("ue_requests_total"), count("ue_errors_total", code="CANCELLED")
    try:
        with caplog.at_level(logging.DEBUG), grpc.insecure_channel(running_server.target) as ch:
            start = len(caplog.records)
            score = prediction_pb2_grpc.RankingStub(ch).Score
            calls = [
                score.future(prediction_pb2.ScoreRequest(rows=[row_proto(rows[0])]), timeout=30)
                for _ in range(5)
            ]
            deadline = time.monotonic() + 30
            while count("ue_requests_total") < received + 5:  # all held by the model
                assert time.monotonic() < deadline, "the requests did not arrive"
                time.sleep(0.02)
            for call in calls:
                call.cancel()
            while count("ue_errors_total", code="CANCELLED") < cancelled + 5:
                assert time.monotonic() < deadline, "the server did not see the cancellations"
                time.sleep(0.02)
            records = [
                r
                for r in caplog.records[start:]
                if r.name.startswith(("serving", "grpc")) and r.levelno >= logging.INFO
            ]
    finally:
        gate.set()
    assert len(records) == 5, [r.getMessage() for r in records]
    for record in records:
        assert record.levelno == logging.INFO and record.exc_info is None
        assert record.getMessage() == (
            "Score cancelled: the client went away, cancelled or the server is stopping"
        )
