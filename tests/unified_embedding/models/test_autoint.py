"""Tests of the AutoInt / AutoInt+ model, its config and InteractingStack."""

import dataclasses
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from unified_embedding.models.autoint import (
    AutoInt,
    AutoIntConfig,
    InteractingStack,
    build_autoint,
    output_bias_for,
    ranking_task,
)
from unified_embedding.training.recalibrate import bias_shift, refit_output_bias

BATCH, FIELDS, DIM = 4, 3, 5
SMALL = AutoIntConfig(num_layers=2, num_heads=2, head_dim=4)


class DummyEmbedding(keras.layers.Layer):
    """`features["x"]` (batch, fields) -> (batch, fields, dim): each value times its field's row."""

    def __init__(self, fields: int = FIELDS, dim: int = DIM, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields = fields
        self.dim = dim

    def build(self, input_shape: Any) -> None:
        init = keras.initializers.RandomNormal(seed=1)
        self.table = self.add_weight(name="table", shape=(self.fields, self.dim), initializer=init)
        super().build(input_shape)

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        return features["x"][:, :, None] * self.table


def features(batch: int = BATCH, seed: int = 0) -> dict[str, tf.Tensor]:
    x = np.random.default_rng(seed).normal(size=(batch, FIELDS)).astype(np.float32)
    return {"x": tf.constant(x)}


def model(config: AutoIntConfig = SMALL) -> AutoInt:
    keras.utils.set_random_seed(0)
    return build_autoint(DummyEmbedding(), config)


def test_logits_and_probabilities() -> None:
    autoint = model()
    logits = autoint(features())
    assert logits.shape == (BATCH, 1)
    assert autoint.dnn is None
    np.testing.assert_allclose(autoint.probabilities(features()), tf.sigmoid(logits), rtol=1e-6)


def test_autoint_plus_adds_a_dnn_logit() -> None:
    plus = model(dataclasses.replace(SMALL, dnn_units=(8, 8), dropout=0.1))
    batch = features()
    embeddings = plus.embedding(batch)
    attention_logit = plus.head(plus.interaction(embeddings))
    assert plus.dnn is not None
    dnn_logit = plus.dnn(embeddings)
    np.testing.assert_allclose(plus(batch), attention_logit + dnn_logit, rtol=1e-6)
    assert not np.allclose(plus(batch), attention_logit)


def test_attention_scores() -> None:
    scores = model().attention_scores(features())
    assert len(scores) == SMALL.num_layers
    for layer_scores in scores:
        assert layer_scores.shape == (BATCH, SMALL.num_heads, FIELDS, FIELDS)
        np.testing.assert_allclose(tf.reduce_sum(layer_scores, -1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("label_shape", [(BATCH,), (BATCH, 1)])
def test_compute_loss_is_mean_binary_cross_entropy(label_shape: tuple[int, ...]) -> None:
    # Regression: (batch,) labels made Keras squeeze the logits and return the mean as the
    # per-example loss, so the global-batch division shrank the loss by the batch size.
    autoint = model()
    labels = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    batch = {**features(), "label": tf.constant(labels.reshape(label_shape))}
    loss = autoint.compute_loss(batch)

    logits = autoint(features()).numpy()[:, 0]
    probabilities = 1 / (1 + np.exp(-logits))
    expected = -np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert "label" in batch  # the caller's batch is not mutated


def test_compute_loss_inside_a_strategy() -> None:
    # Keras refuses SUM_OVER_BATCH_SIZE losses inside a strategy; the default task must not.
    autoint = model()
    batch = {**features(), "label": tf.constant([1.0, 0.0, 0.0, 1.0])}
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    per_replica = strategy.run(autoint.compute_loss, args=(batch,))
    loss = strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
    np.testing.assert_allclose(loss, autoint.compute_loss(batch), rtol=1e-6)


def fit_one_step(strategy: tf.distribute.Strategy) -> tuple[float, list[np.ndarray]]:
    """Loss and weights after one SGD step on a fixed batch of 8, trained under `strategy`."""
    batch = {**features(batch=8, seed=5), "label": tf.constant([1.0, 0, 0, 1, 1, 1, 0, 0])}
    data = tf.data.Dataset.from_tensors(batch)
    initial = model()
    initial(batch)
    with strategy.scope():
        autoint = model()
        autoint(batch)
        autoint.set_weights(initial.get_weights())
        autoint.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    history = autoint.fit(data, epochs=1, verbose=0)
    return history.history["loss"][0], autoint.get_weights()


def check_two_replicas_match_one_device() -> None:
    """Run in a fresh process: logical devices must be set before TensorFlow initializes."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    loss, weights = fit_one_step(tf.distribute.get_strategy())
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    mirrored_loss, mirrored_weights = fit_one_step(mirrored)
    np.testing.assert_allclose(mirrored_loss, loss, rtol=1e-5)
    for expected, actual in zip(weights, mirrored_weights, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6)


def test_two_replicas_train_like_one_device(tmp_path: Path) -> None:
    # Each replica sees half the batch; the loss scaling must make the summed gradients equal
    # the one-device gradient (a per-replica mean would double the step).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONDONTWRITEBYTECODE": "1"}
    code = "import test_autoint; test_autoint.check_two_replicas_match_one_device()"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{env['PYTHONPATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_fit_decreases_loss() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, FIELDS)).astype(np.float32)
    labels = (x[:, 0] + x[:, 1] - x[:, 2] > 0).astype(np.float32)  # learnable from x alone
    data = tf.data.Dataset.from_tensor_slices({"x": x, "label": labels}).batch(64)
    autoint = model()
    autoint.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01))
    before = autoint.evaluate(data, return_dict=True, verbose=0)
    autoint.fit(data, epochs=5, verbose=0)
    after = autoint.evaluate(data, return_dict=True, verbose=0)
    assert after["loss"] < 0.6 * before["loss"]
    assert after["auc"] > 0.9


def test_mixed_bfloat16_keeps_float32_variables_logits_and_attention() -> None:
    config = dataclasses.replace(SMALL, precision="mixed_bfloat16", dnn_units=(8,))
    autoint, reference = model(config), model(dataclasses.replace(SMALL, dnn_units=(8,)))
    batch = features(batch=16)
    logits = autoint(batch)
    assert logits.dtype == tf.float32
    assert all(v.dtype == tf.float32 for v in autoint.trainable_variables)
    layer = autoint.interaction.interacting_layers[0]
    assert layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
    scores = autoint.attention_scores(batch)
    assert all(s.dtype == tf.float32 for s in scores)
    np.testing.assert_allclose(tf.reduce_sum(scores[0], -1), 1.0, rtol=1e-6)
    # Same weights in float32: bfloat16 matrix work changes the logits by well under 1%.
    reference(batch)
    reference.set_weights(autoint.get_weights())
    np.testing.assert_allclose(logits, reference(batch), rtol=0.05, atol=0.02)


def test_mixed_bfloat16_fits() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, FIELDS)).astype(np.float32)
    labels = (x[:, 0] + x[:, 1] - x[:, 2] > 0).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices({"x": x, "label": labels}).batch(64)
    autoint = model(dataclasses.replace(SMALL, precision="mixed_bfloat16"))
    autoint.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01))
    autoint.fit(data, epochs=5, verbose=0)
    assert autoint.evaluate(data, return_dict=True, verbose=0)["auc"] > 0.9


def test_saved_model_serves_identical_probabilities(tmp_path: Path) -> None:
    autoint = model(dataclasses.replace(SMALL, dnn_units=(8,)))
    batch = features(batch=7, seed=3)
    expected = autoint.probabilities(batch)

    @tf.function(input_signature=[tf.TensorSpec((None, FIELDS), tf.float32, name="x")])
    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probability": autoint.probabilities({"x": x})}

    tf.saved_model.save(autoint, str(tmp_path), signatures={"serving_default": serve})
    loaded = tf.saved_model.load(str(tmp_path))
    served = loaded.signatures["serving_default"](x=batch["x"])["probability"]
    np.testing.assert_allclose(served, expected, rtol=1e-6)


def test_stack_keras_save_and_load(tmp_path: Path) -> None:
    inputs = keras.Input((FIELDS, DIM))
    stack = InteractingStack(num_layers=2, num_heads=2, head_dim=3, use_scale=True)
    functional = keras.Model(inputs, stack(inputs))
    x = np.random.default_rng(0).normal(size=(BATCH, FIELDS, DIM)).astype(np.float32)

    functional.save(tmp_path / "stack", save_format="tf")
    loaded = keras.models.load_model(tmp_path / "stack")
    assert isinstance(loaded.layers[-1], InteractingStack)  # revived from config, not generic
    np.testing.assert_allclose(loaded(x), functional(x), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_stack_config_round_trip(dtype: str) -> None:
    stack = InteractingStack(num_layers=2, num_heads=3, head_dim=2, use_residual=False, dtype=dtype)
    config = stack.get_config()
    init_args = set(inspect.signature(InteractingStack.__init__).parameters) - {"self", "kwargs"}
    assert init_args <= set(config)

    x = np.random.default_rng(0).normal(size=(BATCH, FIELDS, DIM)).astype(np.float32)
    restored = InteractingStack.from_config(config)
    stack(x), restored(x)  # build both
    restored.set_weights(stack.get_weights())
    np.testing.assert_array_equal(restored(x), stack(x))
    assert restored.get_config() == config


def test_default_config_is_the_papers() -> None:
    config = AutoIntConfig()
    assert (config.num_layers, config.num_heads, config.head_dim) == (3, 2, 32)
    assert config.use_residual and not config.dnn_units
    assert AutoIntConfig(dnn_units=[4, 2]).dnn_units == (4, 2)  # type: ignore[arg-type]


def test_ranking_task_reduction_is_configurable() -> None:
    labels, logits = tf.constant([[1.0], [0.0]]), tf.constant([[2.0], [-1.0]])
    per_example = ranking_task()(labels=labels, predictions=logits)
    total = ranking_task(keras.losses.Reduction.SUM)(labels=labels, predictions=logits)
    assert per_example.shape == (2,)
    np.testing.assert_allclose(tf.reduce_sum(per_example), total, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_layers": 0}, "`num_layers` should be >= 1. Received: `num_layers=0`"),
        ({"num_heads": 0}, "`num_heads` should be >= 1. Received: `num_heads=0`"),
        ({"head_dim": 0}, "`head_dim` should be >= 1. Received: `head_dim=0`"),
        ({"dnn_units": (4, 0)}, "`dnn_units` should all be >= 1. Received: `dnn_units=(4, 0)`"),
        (
            {"dropout": 1.0, "dnn_units": (4,)},
            "`dropout` should be in [0, 1). Received: `dropout=1.0`",
        ),
        (
            {"dropout": 0.5},
            "`dropout` only applies to the AutoInt+ DNN, so `dnn_units` should be set. "
            "Received: `dropout=0.5`, `dnn_units=()`",
        ),
        (
            {"output_bias": float("inf")},
            "`output_bias` should be finite. Received: `output_bias=inf`",
        ),
        (
            {"precision": "float16"},
            "`precision` should be one of ('float32', 'mixed_bfloat16'). "
            "Received: `precision=float16`",
        ),
    ],
)
def test_config_validation_messages(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        AutoIntConfig(**kwargs)
    assert str(error.value) == message


def test_stack_validation_message() -> None:
    with pytest.raises(ValueError) as error:
        InteractingStack(num_layers=0)
    assert str(error.value) == "`num_layers` should be >= 1. Received: `num_layers=0`"


@pytest.mark.parametrize("rate", [0.01, 0.23, 0.5])
def test_output_bias_predicts_the_base_rate_before_training(rate: float) -> None:
    bias = output_bias_for(rate)
    assert 1 / (1 + np.exp(-bias)) == pytest.approx(rate)
    config = dataclasses.replace(SMALL, output_bias=bias)
    for variant in (config, dataclasses.replace(config, dnn_units=(8,))):
        autoint = model(variant)
        autoint(features())
        assert float(autoint.head.layers[-1].bias.numpy()[0]) == pytest.approx(bias)
        if autoint.dnn is not None:  # AutoInt+: the DNN's logit starts without a bias
            assert float(autoint.dnn.layers[-1].bias.numpy()[0]) == 0.0
        # Zero embeddings: the logit is the bias alone, P(click) the base rate.
        zero = {"x": tf.zeros((BATCH, FIELDS))}
        if autoint.dnn is None:
            np.testing.assert_allclose(autoint.probabilities(zero), rate, rtol=1e-5)
    # The head's Dense config carries the initial bias, so a rebuild from config keeps it.
    dense = model(config).head.layers[-1]
    clone = keras.layers.Dense.from_config(dense.get_config())
    assert clone.bias_initializer.value == pytest.approx(bias)


def test_output_bias_clips_rates_of_zero_and_one() -> None:
    assert output_bias_for(0.0) == pytest.approx(-13.8155, abs=1e-3)  # logit(1e-6)
    assert output_bias_for(1.0) == pytest.approx(13.8155, abs=1e-3)
    with pytest.raises(ValueError, match="`label_rate` should be in"):
        output_bias_for(1.5)


def test_ranking_task_reports_calibration_and_ece() -> None:
    task = ranking_task()
    # sigmoid(0) = 0.5 for both rows, one positive: calibration 1.0; one bin |1 - 1| = 0.
    task(labels=tf.constant([[1.0], [0.0]]), predictions=tf.constant([[0.0], [0.0]]))
    results = {m.name: float(m.result()) for m in task.metrics}
    assert results["calibration"] == pytest.approx(1.0)
    assert results["ece"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("rate", [0.01, 0.3, 0.9])
def test_bias_shift_makes_the_mean_prediction_the_label_rate(rate: float) -> None:
    logits = np.random.default_rng(0).normal(-1.0, 2.0, 5000)
    shift = bias_shift(logits, rate)
    assert np.mean(1 / (1 + np.exp(-(logits + shift)))) == pytest.approx(rate, abs=1e-8)
    assert bias_shift(logits, 0.0) == 0.0 and bias_shift(np.zeros(0), rate) == 0.0


def test_refit_output_bias_fixes_the_level_and_keeps_the_order() -> None:
    autoint = model()
    x = features(batch=400, seed=3)
    labels = (np.random.default_rng(3).uniform(size=(400, 1)) < 0.05).astype(np.float32)
    rows = tf.data.Dataset.from_tensor_slices({**x, "label": labels}).batch(64)
    before = autoint.probabilities(x).numpy()[:, 0]
    shift = refit_output_bias(autoint, rows)
    after = autoint.probabilities(x).numpy()[:, 0]
    assert after.mean() == pytest.approx(labels.mean(), rel=1e-4)
    assert float(autoint.head.layers[-1].bias.numpy()[0]) == pytest.approx(shift, abs=1e-6)
    np.testing.assert_array_equal(
        np.argsort(before, kind="stable"), np.argsort(after, kind="stable")
    )
