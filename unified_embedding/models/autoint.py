"""AutoInt and AutoInt+ CTR ranking models on TFRS, assembled from injected blocks (their
hyper-parameters: `models.config`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from unified_embedding.layers.interacting import InteractingLayer
from unified_embedding.metrics.streaming import (
    Calibration,
    ExpectedCalibrationError,
    HistogramAUC,
)
from unified_embedding.models.config import (
    DEFAULT_TRAIN_MODEL,
    MIN_LABEL_RATE,
    PRECISIONS,
    AutoIntConfig,
    output_bias_for,
)

__all__ = [
    "DEFAULT_TRAIN_MODEL",
    "MIN_LABEL_RATE",
    "PRECISIONS",
    "AutoInt",
    "AutoIntConfig",
    "InteractingStack",
    "build_autoint",
    "output_bias_for",
    "ranking_task",
]

Features = Mapping[str, tf.Tensor]


@keras.utils.register_keras_serializable(package="unified_embedding")
class InteractingStack(keras.layers.Layer):
    """`num_layers` `InteractingLayer`s in sequence: interactions up to order `num_layers + 1`.

    Args: `num_layers` (paper: 3); the others are passed to each `InteractingLayer`.
    Input shape: `(batch, fields, d)`. Output shape: `(batch, fields, num_heads * head_dim)`;
    with `return_attention_scores=True` also one `(batch, heads, fields, fields)` per layer.
    """

    def __init__(
        self,
        num_layers: int = 3,
        num_heads: int = 2,
        head_dim: int = 32,
        use_residual: bool = True,
        use_scale: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_layers < 1:
            raise ValueError(f"`num_layers` should be >= 1. Received: `num_layers={num_layers}`")
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.use_residual = use_residual
        self.use_scale = use_scale
        self.interacting_layers = [
            InteractingLayer(
                num_heads,
                head_dim,
                use_residual,
                use_scale,
                name=f"interacting_{i}",
                dtype=self.dtype_policy,
            )
            for i in range(num_layers)
        ]

    def call(
        self, inputs: tf.Tensor, return_attention_scores: bool = False
    ) -> tf.Tensor | tuple[tf.Tensor, list[tf.Tensor]]:
        outputs, all_scores = inputs, []
        for layer in self.interacting_layers:
            if not return_attention_scores:  # no (batch, heads, fields, fields) stack to build
                outputs = layer(outputs)
                continue
            outputs, scores = layer(outputs, return_attention_scores=True)
            all_scores.append(scores)
        return (outputs, all_scores) if return_attention_scores else outputs

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = super().get_config()
        config.update(
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            head_dim=self.head_dim,
            use_residual=self.use_residual,
            use_scale=self.use_scale,
        )
        return config


def ranking_task(reduction: str = keras.losses.Reduction.NONE) -> tfrs.tasks.Ranking:
    """The CTR task: binary cross-entropy on logits, reporting AUC (from a fine logit histogram,
    with `auc_bound`), log loss, calibration (mean predicted / observed CTR) and ECE (10
    equal-mass bins).

    Args:
      reduction: `NONE` (per-example losses) or `SUM`. `AutoInt.compute_loss` sums either and
        divides by the global batch size, which is the right scale both outside and inside a
        `tf.distribute` strategy (whose optimizer sums the replicas' gradients). Keras refuses
        `SUM_OVER_BATCH_SIZE`/`AUTO` inside a strategy outside `compile()`, and they would
        double-divide here.
    """
    return tfrs.tasks.Ranking(
        loss=keras.losses.BinaryCrossentropy(from_logits=True, reduction=reduction),
        metrics=[
            HistogramAUC(name="auc"),  # with `auc_bound`, its largest possible error
            keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss"),
            Calibration(name="calibration"),
            ExpectedCalibrationError(name="ece"),
        ],
    )


class AutoInt(tfrs.models.Model):
    """AutoInt ranking model: `logit = head(interaction(embedding(features))) [+ dnn(...)]`.

    Args:
      embedding: maps the features (the batch minus the label) to `(batch, fields, d)`.
      interaction: `(batch, fields, d)` -> `(batch, fields, d')`; `attention_scores` needs it
        to accept `return_attention_scores=True` (as `InteractingStack` does).
      head: maps the interaction output to a `(batch, 1)` logit.
      dnn: AutoInt+'s parallel network from the embeddings to a `(batch, 1)` logit, added.
      task: defaults to `ranking_task()`; its loss reduction must be `NONE` or `SUM`.
      label_key: the feature holding the 0/1 label.
      nested_widths: Matryoshka table widths (`AutoIntConfig.nested_widths`); the embedding
        must take `width=` and the widths must divide its `table_width`, which is among them.
    """

    def __init__(
        self,
        embedding: keras.layers.Layer,
        interaction: keras.layers.Layer,
        head: keras.layers.Layer,
        dnn: keras.layers.Layer | None = None,
        task: tfrs.tasks.Ranking | None = None,
        label_key: str = "label",
        nested_widths: tuple[int, ...] = (),
    ) -> None:
        super().__init__()
        check_nested_widths(nested_widths, getattr(embedding, "table_width", None))
        self.nested_widths = tuple(nested_widths)
        self.embedding = embedding
        self.interaction = interaction
        self.head = head
        self.dnn = dnn
        self.task = task if task is not None else ranking_task()
        self.label_key = label_key

    def call(
        self, features: Features, training: bool | None = None, width: int | None = None
    ) -> tf.Tensor:
        """Logits (batch, 1); `width`: with the table read at that nested width (None: all)."""
        embeddings = self.embedding(features, width=width) if width else self.embedding(features)
        logits = self.head(self.interaction(embeddings))  # (batch, 1)
        if self.dnn is not None:
            logits += self.dnn(embeddings)
        return logits

    def probabilities(self, features: Features) -> tf.Tensor:
        """Click probabilities, `(batch, 1)`."""
        return tf.sigmoid(self(features))

    def attention_scores(self, features: Features) -> list[tf.Tensor]:
        """Per interacting layer, the attention weights `(batch, heads, fields, fields)`."""
        _, scores = self.interaction(self.embedding(features), return_attention_scores=True)
        return list(scores)

    def compute_loss(self, inputs: Features, training: bool = False) -> tf.Tensor:
        features = dict(inputs)  # copy: the caller's batch keeps its label
        # (batch, 1) like the logits: with (batch,) labels Keras squeezes the logits and a NONE
        # reduction would already average the batch into a scalar.
        labels = tf.reshape(features.pop(self.label_key), (-1, 1))
        logits = self(features, training=training)
        loss = self.task(labels=labels, predictions=logits, training=training)
        for width in self.nested_widths[:-1]:  # the narrower widths: their loss, no metrics
            narrow = self(features, training=training, width=width)
            loss += self.task(labels, narrow, training=training, compute_metrics=False)
        if self.nested_widths:  # the mean: one loss's gradient scale, for the tuned rates
            loss /= len(self.nested_widths)
        # Mean over the *global* batch: under a strategy the replicas' gradients are summed.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        global_batch = tf.cast(tf.shape(logits)[0] * replicas, loss.dtype)
        return tf.reduce_sum(loss) / global_batch


def check_nested_widths(widths: tuple[int, ...], table_width: int | None) -> None:
    """Nested widths must divide the table's width and include it (or be empty: off)."""
    if not widths:
        return
    if table_width is None:
        raise ValueError(
            "`nested_widths` needs an embedding layer with a `table_width` (a layout of "
            f"`layers`). Received: `nested_widths={widths}`"
        )
    wrong = [w for w in widths if table_width % w]
    if wrong or max(widths) != table_width:
        raise ValueError(
            f"`nested_widths` should divide the table's width {table_width} and include it. "
            f"Received: `nested_widths={widths}`"
        )


def _logit_network(
    hidden_units: tuple[int, ...],
    dropout: float,
    name: str,
    precision: str = "float32",
    bias: float = 0.0,
) -> keras.Sequential:
    """Flatten -> [Dense(ReLU) -> Dropout]* -> Dense(1) logit, its bias starting at `bias`."""
    layers: list[keras.layers.Layer] = [keras.layers.Flatten()]
    for units in hidden_units:
        layers.append(keras.layers.Dense(units, activation="relu", dtype=precision))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    # float32 logit even under a mixed-precision policy: the loss and AUC need the precision.
    output = keras.layers.Dense(
        1, bias_initializer=keras.initializers.Constant(bias), dtype="float32"
    )
    layers.append(output)
    return keras.Sequential(layers, name=name)


def build_autoint(embedding: keras.layers.Layer, config: AutoIntConfig | None = None) -> AutoInt:
    """AutoInt (or AutoInt+ when `config.dnn_units` is non-empty) on top of `embedding`;
    without `config`, the paper's AutoInt (`AutoIntConfig()`)."""
    config = config or AutoIntConfig()
    interaction = InteractingStack(
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        head_dim=config.head_dim,
        use_residual=config.use_residual,
        use_scale=config.use_scale,
        dtype=config.precision,
    )
    dnn = (
        _logit_network(config.dnn_units, config.dropout, "dnn", config.precision)
        if config.dnn_units
        else None
    )
    # One bias starts at the base rate's logit; AutoInt+'s DNN adds its own, starting at 0.
    head = _logit_network((), 0.0, "head", bias=config.output_bias)
    return AutoInt(embedding, interaction, head=head, dnn=dnn, nested_widths=config.nested_widths)
