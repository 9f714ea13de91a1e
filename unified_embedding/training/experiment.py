"""One experiment: train AutoInt with one embedding layout at one budget on in-memory rows.

Used by the demo, the learnability test and budget comparisons on data that fits in memory. The
pipeline-records path (`ue train`) shares the same model, layers and hashing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from unified_embedding.budget.layouts import get_layout
from unified_embedding.budget.params import BudgetPlan
from unified_embedding.budget.plan import plan_budget
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.kinds import kind_of
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.layers.field_embedding import FieldEmbedding
from unified_embedding.metrics.exact import log_loss, roc_auc
from unified_embedding.models.autoint import AutoInt, AutoIntConfig, build_autoint
from unified_embedding.rows.reader import RawRows
from unified_embedding.training.config import TrainConfig


@dataclass(frozen=True)
class ExperimentResult:
    layout: str
    budget_bytes: int
    embedding_params: int
    auc: float
    logloss: float
    train_seconds: float
    train_examples_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def distinct_values(rows: RawRows, spec: FeatureSpec) -> dict[str, list[str]]:
    """Every value seen per categorical field (vocabularies for the collision-free layout)."""
    out = {}
    for f in spec.categorical_fields:
        values = kind_of(f).cell_values(f, rows.columns[f.name])
        out[f.name] = sorted({str(v) for v in values if v != ""})
    return out


def build_embedding(
    layout: str,
    spec: FeatureSpec,
    plan: BudgetPlan,
    vocabularies: Mapping[str, Sequence[str]] | None = None,
    fingerprints: Mapping[str, Sequence[int] | np.ndarray] | None = None,
) -> FieldEmbedding:
    """The embedding block of `layout` spending `plan`'s budget. A layout that
    `needs_vocabulary` ignores the budget: it takes `vocabularies` (raw values) or
    `fingerprints` per field."""
    return get_layout(layout).build(spec, plan, vocabularies, fingerprints)


def encode(spec: FeatureSpec, rows: RawRows) -> dict[str, tf.Tensor]:
    features = encode_features(
        spec, {k: tf.constant(v.astype(str)) for k, v in rows.columns.items()}
    )
    return {**features, "label": tf.constant(rows.labels[:, None])}


def make_optimizer(model: AutoInt, config: TrainConfig, layout: str) -> Any:
    """Sparse Adagrad on the embedding tables (as `layout`'s `table_variables` names them),
    Adam on everything else."""
    import tensorflow_recommenders as tfrs

    tables = get_layout(layout).table_variables(model.embedding)
    table_ids = {id(v) for v in tables}
    dense = [v for v in model.trainable_variables if id(v) not in table_ids]
    return tfrs.experimental.optimizers.CompositeOptimizer(
        [
            (
                keras.optimizers.Adagrad(
                    config.table_learning_rate, weight_decay=config.table_weight_decay or None
                ),
                lambda: tables,
            ),
            (keras.optimizers.Adam(config.learning_rate), lambda: dense),
        ]
    )


def predict(model: AutoInt, features: Mapping[str, tf.Tensor], batch_size: int) -> np.ndarray:
    inputs = {k: v for k, v in features.items() if k != "label"}
    dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    probabilities = tf.function(model.probabilities)
    return np.concatenate([probabilities(batch).numpy()[:, 0] for batch in dataset])


def train_and_evaluate(
    spec: FeatureSpec,
    layout: str,
    train: RawRows,
    evaluation: RawRows,
    budget_bytes: int,
    model_config: AutoIntConfig | None = None,
    train_config: TrainConfig | None = None,
) -> tuple[AutoInt, ExperimentResult]:
    """Train on `train`, score `evaluation`; the embedding spends `budget_bytes` of float32."""
    model_config = model_config or AutoIntConfig()
    train_config = train_config or TrainConfig()
    tf.keras.utils.set_random_seed(train_config.seed)
    vocabularies = distinct_values(train, spec) if get_layout(layout).needs_vocabulary else None
    cardinalities = {k: len(v) for k, v in (vocabularies or {}).items()}
    plan = plan_budget(spec, budget_bytes, cardinalities)
    embedding = build_embedding(layout, spec, plan, vocabularies)
    model = build_autoint(embedding, model_config)
    train_features = encode(spec, train)
    dataset = (
        tf.data.Dataset.from_tensor_slices(train_features)
        .shuffle(len(train), seed=train_config.seed, reshuffle_each_iteration=True)
        .batch(train_config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    model(next(iter(dataset)))  # create every variable before splitting them among optimizers
    model.compile(optimizer=make_optimizer(model, train_config, layout))
    started = time.perf_counter()
    model.fit(dataset, epochs=train_config.epochs, verbose=0)
    seconds = time.perf_counter() - started
    scores = predict(model, encode(spec, evaluation), 4096)
    result = ExperimentResult(
        layout=layout,
        budget_bytes=budget_bytes,
        embedding_params=int(embedding.count_params()),
        auc=roc_auc(evaluation.labels, scores),
        logloss=log_loss(evaluation.labels, scores),
        train_seconds=seconds,
        train_examples_per_second=len(train) * train_config.epochs / seconds,
    )
    return model, result
