"""Tests of InteractingLayer against an independent NumPy oracle."""

import inspect
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from unified_embedding.layers.interacting import InteractingLayer

BATCH, FIELDS, D_IN, HEADS, HEAD_DIM = 2, 3, 4, 2, 3


def numpy_interacting(
    x: np.ndarray, layer: InteractingLayer, use_scale: bool
) -> tuple[np.ndarray, np.ndarray]:
    """AutoInt eq. 5-8 written out per head with plain NumPy loops."""
    wq, wk, wv = (w.numpy() for w in (layer.query_kernel, layer.key_kernel, layer.value_kernel))
    heads = []
    all_scores = []
    for h in range(layer.num_heads):
        cols = slice(h * layer.head_dim, (h + 1) * layer.head_dim)
        q, k, v = x @ wq[:, cols], x @ wk[:, cols], x @ wv[:, cols]  # (batch, fields, dh)
        logits = q @ k.transpose(0, 2, 1)  # (batch, fields, fields)
        if use_scale:
            logits = logits / np.sqrt(layer.head_dim)
        scores = np.exp(logits - logits.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        heads.append(scores @ v)
        all_scores.append(scores)
    out = np.concatenate(heads, axis=-1)
    if layer.use_residual:
        assert layer.residual_kernel is not None
        out = out + x @ layer.residual_kernel.numpy()
    return np.maximum(out, 0.0), np.stack(all_scores, axis=1)


@pytest.fixture
def x() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(BATCH, FIELDS, D_IN)).astype(np.float32)


@pytest.mark.parametrize("use_residual", [True, False])
@pytest.mark.parametrize("use_scale", [True, False])
def test_matches_numpy(x: np.ndarray, use_residual: bool, use_scale: bool) -> None:
    layer = InteractingLayer(HEADS, HEAD_DIM, use_residual=use_residual, use_scale=use_scale)
    outputs, scores = layer(x, return_attention_scores=True)
    expected_outputs, expected_scores = numpy_interacting(x, layer, use_scale)

    assert outputs.shape == (BATCH, FIELDS, HEADS * HEAD_DIM)
    assert scores.shape == (BATCH, HEADS, FIELDS, FIELDS)
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tf.reduce_sum(scores, -1), np.ones((BATCH, HEADS, FIELDS)), 1e-6)


def test_identical_fields_attend_uniformly() -> None:
    # Every field holds the same vector, so all logits tie: alpha = 1/3 and, with all-ones
    # kernels, each output = ReLU(sum_k 1/3 * (2 * 4)) + residual (2 * 4) = 8 + 8 = 16.
    x = np.full((1, FIELDS, D_IN), 2.0, np.float32)
    layer = InteractingLayer(HEADS, HEAD_DIM, kernel_initializer="ones")
    outputs, scores = layer(x, return_attention_scores=True)
    np.testing.assert_allclose(scores, np.full((1, HEADS, FIELDS, FIELDS), 1 / 3), rtol=1e-6)
    np.testing.assert_allclose(outputs, np.full((1, FIELDS, HEADS * HEAD_DIM), 16.0), rtol=1e-6)


def test_kernels_are_initialized_independently() -> None:
    # Regression: one unseeded initializer instance gave W_Q = W_K = W_V = W_Res.
    layer = InteractingLayer(HEADS, HEAD_DIM)
    layer.build((None, FIELDS, D_IN))
    kernels = [w.numpy() for w in layer.weights]
    assert len(kernels) == 4
    for i, first in enumerate(kernels):
        for second in kernels[i + 1 :]:
            assert not np.allclose(first, second)


@pytest.mark.parametrize("use_residual, projections", [(True, 4), (False, 3)])
def test_parameter_count(use_residual: bool, projections: int) -> None:
    layer = InteractingLayer(HEADS, HEAD_DIM, use_residual=use_residual)
    layer.build((None, FIELDS, D_IN))
    assert layer.count_params() == projections * D_IN * HEADS * HEAD_DIM


def test_static_shape_in_functional_model() -> None:
    outputs = InteractingLayer(HEADS, HEAD_DIM)(keras.Input((FIELDS, D_IN)))
    assert outputs.shape.as_list() == [None, FIELDS, HEADS * HEAD_DIM]


def test_config_round_trip(x: np.ndarray) -> None:
    layer = InteractingLayer(HEADS, HEAD_DIM, use_residual=False, use_scale=True, name="inter")
    config = layer.get_config()
    init_args = set(inspect.signature(InteractingLayer.__init__).parameters) - {"self", "kwargs"}
    assert init_args <= set(config)

    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, InteractingLayer)
    assert restored.get_config() == config
    restored.build(x.shape)
    layer.build(x.shape)
    restored.set_weights(layer.get_weights())
    np.testing.assert_array_equal(restored(x), layer(x))


def test_mixed_bfloat16_close_to_float32(x: np.ndarray) -> None:
    layer = InteractingLayer(HEADS, HEAD_DIM, dtype=keras.mixed_precision.Policy("mixed_bfloat16"))
    outputs, scores = layer(x, return_attention_scores=True)
    assert outputs.dtype == tf.bfloat16
    assert layer.query_kernel.dtype == tf.float32  # weights stay float32
    expected, _ = numpy_interacting(x, layer, use_scale=False)
    np.testing.assert_allclose(tf.cast(outputs, tf.float32), expected, rtol=0.05, atol=0.05)
    np.testing.assert_allclose(tf.reduce_sum(tf.cast(scores, tf.float32), -1), 1.0, atol=0.01)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_heads": 0}, "`num_heads` should be >= 1. Received: `num_heads=0`"),
        ({"head_dim": -2}, "`head_dim` should be >= 1. Received: `head_dim=-2`"),
    ],
)
def test_validation_messages(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        InteractingLayer(**kwargs)
    assert str(error.value) == message


def fused_interacting(x: tf.Tensor, layer: InteractingLayer) -> tf.Tensor:
    """The earlier formulation, kept as a reference: one (batch * fields, 4 x units) projection
    of all kernels, then a transpose to (projection, batch, heads, fields, dh)."""
    assert layer.residual_kernel is not None
    kernels = [layer.query_kernel, layer.key_kernel, layer.value_kernel, layer.residual_kernel]
    fields, d_in = x.shape[1], x.shape[2]
    projected = tf.matmul(tf.reshape(x, (-1, d_in)), tf.concat(kernels, axis=1))
    projected = tf.reshape(projected, (-1, fields, 4, layer.num_heads, layer.head_dim))
    query, key, value, residual = tf.unstack(tf.transpose(projected, (2, 0, 3, 1, 4)), axis=0)
    scores = tf.nn.softmax(tf.matmul(query, key, transpose_b=True), axis=-1)
    outputs = tf.nn.relu(tf.matmul(scores, value) + residual)  # (batch, heads, fields, dh)
    return tf.reshape(
        tf.transpose(outputs, (0, 2, 1, 3)), (-1, fields, layer.num_heads * layer.head_dim)
    )


def test_same_outputs_and_gradients_as_the_fused_formulation() -> None:
    # The per-head form changes only the order of float32 rounding, at a realistic size
    # (26 fields, 2 heads of 32, a 16-wide input), forward and backward.
    x = tf.constant(np.random.default_rng(1).normal(size=(8, 26, 16)).astype(np.float32))
    layer = InteractingLayer(2, 32)
    layer.build(x.shape)
    results = []
    for fn in (layer, lambda inputs: fused_interacting(inputs, layer)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = fn(x)
            loss = tf.reduce_sum(outputs * tf.sin(outputs))
        results.append([outputs, *tape.gradient(loss, [x, *layer.trainable_weights])])
    for ours, reference in zip(*results, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-5)
