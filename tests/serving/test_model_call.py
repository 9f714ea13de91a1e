"""The server's model call (session callables, `serving.model_call`) against the tf.function
signatures of `tf.saved_model.load`: the same outputs to 1e-6 for every signature, in process,
through the predictor, and through a server after a hot reload to a version with other weights."""

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from protos import prediction_pb2
from serving.client import RankingClient, rows_from_file
from serving.model_call import FunctionCalls, SessionCalls, SignatureSession
from serving.model_manager import ManagerConfig
from serving.predictor import PackedBatch, Predictor
from serving.server import BackgroundServer, ServerConfig
from unified_embedding.exported.writer import export

ROWS = 40


@pytest.fixture(scope="module")
def predictor(exported_model: Any) -> Predictor:
    return Predictor.load(exported_model.version)


@pytest.fixture(scope="module")
def batch(exported_model: Any, predictor: Predictor) -> PackedBatch:
    return predictor.pack_rows(
        rows_from_file(exported_model.rows_file, "criteo", _info(predictor))[:ROWS]
    )


def _config(base: Path) -> ServerConfig:
    return ServerConfig(ManagerConfig(base, poll_seconds=0.1), port=0, grace_seconds=2)


def _info(predictor: Predictor) -> prediction_pb2.ModelInfo:
    return prediction_pb2.ModelInfo(
        fields=[prediction_pb2.Field(name=f.name, kind=f.kind) for f in predictor.spec.fields]
    )


def _columns(predictor: Predictor, batch: PackedBatch) -> dict[str, np.ndarray]:
    """The raw-feature signatures' inputs: one column per field."""
    columns = {n: batch.categorical[:, i] for i, n in enumerate(predictor.categorical_names)}
    columns.update({n: batch.numeric[:, i] for i, n in enumerate(predictor.numeric_names)})
    return columns


def _tensor(array: np.ndarray) -> tf.Tensor:
    return tf.constant(array, tf.float32 if array.dtype.kind == "f" else tf.string)


@pytest.mark.parametrize("signature", ["packed", "serving_default", "attention"])
def test_each_signature_gives_the_tf_function_outputs(
    exported_model: Any,
    predictor: Predictor,
    batch: PackedBatch,
    signature: str,
) -> None:
    session = SignatureSession.load(exported_model.version)
    function = tf.saved_model.load(str(exported_model.version)).signatures[signature]
    if signature == "packed":
        inputs = {"categorical": batch.categorical, "numeric": batch.numeric}
    else:
        inputs = _columns(predictor, batch)
    expected = {
        k: v.numpy() for k, v in function(**{k: _tensor(v) for k, v in inputs.items()}).items()
    }
    got = session.run(signature, inputs)
    assert set(got) == set(expected) and set(got) == set(session.outputs(signature))
    for name, value in expected.items():
        assert got[name].shape == value.shape and len(value) == ROWS
        np.testing.assert_allclose(got[name], value, rtol=0, atol=1e-6, err_msg=name)


def test_the_predictor_scores_and_explains_as_the_tf_functions_do(
    exported_model: Any,
    predictor: Predictor,
    batch: PackedBatch,
) -> None:
    assert isinstance(predictor.calls, SessionCalls)
    reference = Predictor(
        exported_model.version,
        predictor.spec,
        tf.saved_model.load(str(exported_model.version)),
        predictor.config,
    )
    assert isinstance(reference.calls, FunctionCalls)
    scores = predictor.predict(batch)
    assert scores.dtype == np.float32 and scores.shape == (ROWS,)
    assert np.unique(scores).size > 1  # real rows, not one constant
    np.testing.assert_allclose(scores, reference.predict(batch), rtol=0, atol=1e-6)
    one = PackedBatch(batch.categorical[:1], batch.numeric[:1])  # batch-1, as served
    np.testing.assert_allclose(predictor.predict(one), scores[:1], rtol=0, atol=1e-6)
    got, expected = predictor.explain(batch, top_k=3), reference.explain(batch, top_k=3)
    for row_got, row_expected in zip(got, expected, strict=True):
        weights = [p.weight for p in row_got]
        np.testing.assert_allclose(weights, [p.weight for p in row_expected], atol=1e-6)
        assert weights == sorted(weights, reverse=True) and len(weights) == 3


def test_a_callable_is_one_c_call_not_a_session_run(
    predictor: Predictor, batch: PackedBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = predictor.predict(batch)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("Session.run per call: the slow path")

    monkeypatch.setattr(tf.compat.v1.Session, "run", refuse)
    np.testing.assert_array_equal(predictor.predict(batch), expected)
    strings = batch.categorical.astype(str)  # numpy str columns become the string feed's objects
    np.testing.assert_array_equal(predictor.calls.packed(strings, batch.numeric), expected)


def test_a_callable_refuses_inputs_the_signature_does_not_take(exported_model: Any) -> None:
    session = SignatureSession.load(exported_model.version)
    with pytest.raises(ValueError, match=r"signature `packed` takes \['categorical', 'numeric'\]"):
        session.callable("packed", ("categorical",), "probability")
    with pytest.raises(KeyError, match="no signature `nope`"):
        session.callable("nope", (), "probability")


def _export_other_weights(exported_model: Any, base: Path) -> Path:
    """A new version of the same model with every weight scaled by 1.5 (restored after)."""
    variables = exported_model.model.variables
    saved = [v.numpy() for v in variables]
    try:
        for v, value in zip(variables, saved, strict=True):
            if v.dtype.is_floating:
                v.assign(value * 1.5)
        return Path(export(exported_model.model, exported_model.spec, base))
    finally:
        for v, value in zip(variables, saved, strict=True):
            v.assign(value)


def test_after_a_hot_reload_the_server_scores_as_the_new_versions_tf_function(
    exported_model: Any,
    predictor: Predictor,
    batch: PackedBatch,
    tmp_path: Path,
) -> None:
    base = tmp_path / "export"
    shutil.copytree(exported_model.version, base / "100")
    rows = rows_from_file(exported_model.rows_file, "criteo", _info(predictor))[:ROWS]
    with BackgroundServer(_config(base)) as server, RankingClient(server.target) as client:
        before = np.asarray(client.score(rows).probabilities, np.float32)
        new = _export_other_weights(exported_model, base)
        deadline = time.monotonic() + 60
        while client.score(rows[:1]).model_spec.version != int(new.name):
            assert time.monotonic() < deadline, "the new version was not loaded"
            time.sleep(0.05)
        response = client.score(rows)
        assert server.server is not None
        served = server.server.models.current
        assert served is not None and served.version == int(new.name)
        assert isinstance(served.calls, SessionCalls)
    after = np.asarray(response.probabilities, np.float32)
    function = FunctionCalls(tf.saved_model.load(str(new)))
    np.testing.assert_allclose(before, predictor.predict(batch), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        after, function.packed(batch.categorical, batch.numeric), rtol=0, atol=1e-6
    )
    assert np.abs(after - before).max() > 1e-3  # the new weights answer, not the old ones
