"""AutoInt's interacting layer: multi-head self-attention across feature fields."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="unified_embedding")
class InteractingLayer(keras.layers.Layer):
    """Multi-head self-attention between fields, with a residual projection (AutoInt).

    For the field embeddings `e_m` (the rows of one example) and each head `h`:

        alpha^h_mk = softmax_k(<W^h_Q e_m, W^h_K e_k> [/ sqrt(head_dim)])    (eq. 5)
        e~^h_m     = sum_k alpha^h_mk W^h_V e_k                               (eq. 6)
        e~_m       = concat_h e~^h_m                                          (eq. 7)
        out_m      = ReLU(e~_m + W_Res e_m)                                   (eq. 8)

    From Song et al., "AutoInt: Automatic Feature Interaction Learning via Self-Attentive
    Neural Networks", CIKM 2019 (https://arxiv.org/abs/1810.11921). Each stacked layer raises
    the order of the modelled interactions by one; `alpha` shows which field pairs interact.
    The projections have no biases, as in the paper.

    Args:
      num_heads: number of attention heads `H` (paper: 2).
      head_dim: width `dh` of each head's query/key/value (paper: 32).
      use_residual: add the projected input `e_m W_Res` (eq. 8). Keep it on when stacking
        layers: it preserves the lower-order interactions. Without it `out_m = ReLU(e~_m)`.
      use_scale: divide the attention logits by `sqrt(head_dim)` as Transformers do. The paper
        does not; turn it on for a large `head_dim`, where an unscaled softmax saturates.
      kernel_initializer: initializer of the projection matrices.

    Input shape: `(batch, fields, d_in)`.
    Output shape: `(batch, fields, num_heads * head_dim)`; with `return_attention_scores=True`,
    also the attention weights `alpha` of shape `(batch, num_heads, fields, fields)`, float32.

    Under a mixed precision policy (`dtype="mixed_bfloat16"`) the matrix work runs in bfloat16
    with float32 kernels; the softmax stays in float32.
    """

    def __init__(
        self,
        num_heads: int = 2,
        head_dim: int = 32,
        use_residual: bool = True,
        use_scale: bool = False,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("head_dim", head_dim)):
            if value < 1:
                raise ValueError(f"`{name}` should be >= 1. Received: `{name}={value}`")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.use_residual = use_residual
        self.use_scale = use_scale
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape: tf.TensorShape) -> None:
        d_in = int(input_shape[-1])
        units = self.num_heads * self.head_dim

        def kernel(name: str) -> tf.Variable:
            # A fresh initializer per kernel: an unseeded tf-keras initializer instance returns
            # the same values on every call, which would make W_Q = W_K = W_V.
            initializer = self.kernel_initializer.__class__.from_config(
                self.kernel_initializer.get_config()
            )
            return self.add_weight(name=name, shape=(d_in, units), initializer=initializer)

        self.query_kernel = kernel("query_kernel")
        self.key_kernel = kernel("key_kernel")
        self.value_kernel = kernel("value_kernel")
        self.residual_kernel = kernel("residual_kernel") if self.use_residual else None
        super().build(input_shape)

    def call(
        self, inputs: tf.Tensor, return_attention_scores: bool = False
    ) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(inputs, self.compute_dtype)  # (batch, fields, d_in)
        fields, d_in = x.shape[1], x.shape[2]
        rows = tf.reshape(x, (-1, d_in))  # (batch * fields, d_in)
        # Each head is its own chain of ops, from its own column slice of the kernels: the heads
        # run side by side on TensorFlow's inter-op threads, and every projection comes out in
        # the (batch, fields, dh) layout the attention matmuls read, without the transposes a
        # single (batch * fields, 3-4 x units) projection needs (they cost more than they saved).
        # Read (and under mixed precision cast) each kernel once; heads take column slices.
        kernels = [
            tf.cast(kernel, self.compute_dtype)
            for kernel in (self.query_kernel, self.key_kernel, self.value_kernel)
        ]
        heads, all_scores = [], []
        for head in range(self.num_heads):
            columns = slice(head * self.head_dim, (head + 1) * self.head_dim)
            query, key, value = (_project(rows, kernel[:, columns], fields) for kernel in kernels)
            logits = tf.matmul(query, key, transpose_b=True)  # (batch, fields, fields)
            if self.use_scale:
                logits *= self.head_dim**-0.5
            # Softmax in float32: bfloat16 (8-bit mantissa) is too coarse for exp and its sum.
            scores = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            heads.append(tf.matmul(tf.cast(scores, self.compute_dtype), value))  # (.., dh)
            all_scores.append(scores)
        outputs = tf.concat(heads, axis=-1) if len(heads) > 1 else heads[0]  # eq. 7
        if self.residual_kernel is not None:
            residual = tf.cast(self.residual_kernel, self.compute_dtype)
            outputs += _project(rows, residual, fields)
        outputs = tf.nn.relu(outputs)  # (batch, fields, heads * dh)
        if not return_attention_scores:
            return outputs
        return outputs, tf.stack(all_scores, axis=1)  # (batch, heads, fields, fields)

    def compute_output_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
        return tf.TensorShape(input_shape)[:-1].concatenate([self.num_heads * self.head_dim])

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            use_residual=self.use_residual,
            use_scale=self.use_scale,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def _project(rows: tf.Tensor, kernel: tf.Tensor, fields: int) -> tf.Tensor:
    """`rows @ kernel` for (batch * fields, d_in) rows, as (batch, fields, kernel width)."""
    return tf.reshape(tf.matmul(rows, kernel), (-1, fields, kernel.shape[-1]))
