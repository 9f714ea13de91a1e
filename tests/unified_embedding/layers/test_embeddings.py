"""Embedding layouts: NumPy oracle, config and SavedModel round trips, promised parameter counts.

Tiny batch (3 rows) of a 4-field spec:

    n (numeric)   c (2 probes)   m (multi-valued, "|")   v (vocabulary a, b)
    2.0           "x"            "p|q"                   "a"
    NaN           ""             ""                      "zzz"  (out of vocabulary)
    -1.0          "y"            "q"                     ""     (missing)
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from unified_embedding.budget.plan import plan_budget
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.hashing import MISSING, fingerprint
from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import FeatureSpec, FieldSpec, InputFormat, TableSpec
from unified_embedding.layers.collisionless import CollisionlessEmbedding
from unified_embedding.layers.field_embedding import FieldEmbedding
from unified_embedding.layers.per_feature_hash import PerFeatureHashEmbedding
from unified_embedding.layers.unified import UnifiedEmbedding

DIM = 8
RAW = {
    "n": tf.constant([2.0, np.nan, -1.0]),
    "c": tf.constant(["x", "", "y"]),
    "m": tf.constant(["p|q", "", "q"]),
    "v": tf.constant(["a", "zzz", ""]),
}
VOCABULARIES = {"c": ["x", "y"], "m": ["p", "q"], "v": ["a", "b"]}


def tiny_spec(rows: int = 7, width: int = 4, num_tables: int = 1, probes: int = 2) -> FeatureSpec:
    return FeatureSpec(
        name="tiny",
        input_format=InputFormat(columns=("y", "n", "c", "m", "v")),
        label="y",
        fields=(
            FieldSpec("n", kind="numeric"),
            FieldSpec("c", probes=probes),
            FieldSpec("m", kind="multi_valued", probes=probes, separator="|"),
            FieldSpec("v", vocabulary=("a", "b")),
        ),
        table=TableSpec(rows=rows, width=width, num_tables=num_tables),
        embedding_dim=DIM,
    )


def fps(field: str, values: list[str], probes: int) -> np.ndarray:
    return fingerprint(tf.constant(values), field, probes).numpy()


def set_random_weights(layer: FieldEmbedding, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()])


def numeric_oracle(layer: FieldEmbedding) -> np.ndarray:
    vectors, missing = layer.numeric_vectors.numpy()[0], layer.numeric_missing.numpy()[0]
    return np.stack([2.0 * vectors, missing, -1.0 * vectors])


def vocabulary_row(field: str, vocabulary: list[str], value: str) -> int:
    """Row in a collision-free table: 0 = out of vocabulary, else 1 + rank of the fingerprint."""
    known = np.unique(fps(field, [*vocabulary, MISSING], 1)[:, 0])
    fp = fps(field, [value], 1)[0, 0]
    position = int(np.searchsorted(known, fp))
    return position + 1 if position < len(known) and known[position] == fp else 0


def unified_oracle(layer: UnifiedEmbedding, logical_table: np.ndarray) -> np.ndarray:
    spec = layer.spec
    rows, probes = spec.table.rows, spec.field("c").probes

    def hashed(field: str, value: str) -> np.ndarray:
        ids = [int(i) % rows for i in fps(field, [value], probes)[0]]
        vector = np.concatenate([logical_table[i] for i in ids])
        if field in layer.projections:
            vector = vector @ layer.projections[field].numpy()
        return vector

    c = np.stack([hashed("c", v) for v in ["x", "", "y"]])
    m = np.stack([(hashed("m", "p") + hashed("m", "q")) / 2, hashed("m", ""), hashed("m", "q")])
    table = layer.vocabulary_tables["v"].numpy()
    v = np.stack([table[vocabulary_row("v", ["a", "b"], x)] for x in ["a", "zzz", ""]])
    return np.stack([numeric_oracle(layer), c, m, v], axis=1)


def per_field_oracle(layer: FieldEmbedding, row: Callable[[str, str], int]) -> np.ndarray:
    table = layer.table.numpy()  # type: ignore[attr-defined]
    offsets = layer.offsets  # type: ignore[attr-defined]

    def emb(field: str, value: str) -> np.ndarray:
        return table[offsets[field] + row(field, value)]

    c = np.stack([emb("c", v) for v in ["x", "", "y"]])
    m = np.stack([(emb("m", "p") + emb("m", "q")) / 2, emb("m", ""), emb("m", "q")])
    v = np.stack([emb("v", x) for x in ["a", "zzz", ""]])
    return np.stack([numeric_oracle(layer), c, m, v], axis=1)


def encoded(spec: FeatureSpec) -> dict:
    return encode_features(spec, RAW)


def test_unified_matches_numpy() -> None:
    spec = tiny_spec()
    layer = UnifiedEmbedding(spec)
    layer(encoded(spec))
    set_random_weights(layer)
    np.testing.assert_allclose(
        layer(encoded(spec)).numpy(), unified_oracle(layer, layer.tables[0].numpy()), rtol=1e-5
    )


def test_unified_with_projection_matches_numpy() -> None:
    spec = tiny_spec(probes=3)  # 3 probes x width 4 = 12 != 8: projected per field
    layer = UnifiedEmbedding(spec)
    layer(encoded(spec))
    set_random_weights(layer, seed=1)
    assert set(layer.projections) == {"c", "m"}
    np.testing.assert_allclose(
        layer(encoded(spec)).numpy(), unified_oracle(layer, layer.tables[0].numpy()), rtol=1e-5
    )


@pytest.mark.parametrize("probes", [1, 3])
def test_unified_uses_the_first_probes_of_more_recorded_fingerprints(probes: int) -> None:
    """Records written with 4 probes feed a run using fewer: probe j's salt does not depend on
    the count, so the layer's first `probes` columns are what `probes` probes hash."""
    spec = tiny_spec(probes=probes)
    layer = UnifiedEmbedding(spec)
    layer(encoded(spec))
    set_random_weights(layer, seed=3)
    recorded = encoded(tiny_spec(probes=4))
    assert recorded["c"].shape[-1] == 4 and recorded["m"].flat_values.shape[-1] == 4
    np.testing.assert_array_equal(layer(recorded).numpy(), layer(encoded(spec)).numpy())
    np.testing.assert_allclose(
        layer(recorded).numpy(), unified_oracle(layer, layer.tables[0].numpy()), rtol=1e-5
    )


def test_sub_tables_are_filled_round_robin() -> None:
    spec = tiny_spec(rows=9, num_tables=3)
    layer = UnifiedEmbedding(spec)
    layer(encoded(spec))
    set_random_weights(layer, seed=2)
    logical = np.zeros((9, 4), np.float32)
    for t, table in enumerate(layer.tables):
        assert table.shape == (3, 4)
        logical[t::3] = table.numpy()  # row r lives in sub-table r % 3 at r // 3
    np.testing.assert_allclose(
        layer(encoded(spec)).numpy(), unified_oracle(layer, logical), rtol=1e-5
    )


def test_per_feature_hash_matches_numpy() -> None:
    spec = tiny_spec()
    rows = {"c": 5, "m": 3, "v": 4}
    layer = PerFeatureHashEmbedding(spec, rows)
    layer(encoded(spec))
    set_random_weights(layer)
    expected = per_field_oracle(layer, lambda f, v: int(fps(f, [v], 1)[0, 0]) % rows[f])
    np.testing.assert_allclose(layer(encoded(spec)).numpy(), expected, rtol=1e-5)


def test_collisionless_matches_numpy() -> None:
    spec = tiny_spec()
    layer = CollisionlessEmbedding(spec, {"c": ["x", "y"], "m": ["p", "q"]})
    layer(encoded(spec))
    set_random_weights(layer)
    expected = per_field_oracle(layer, lambda f, v: vocabulary_row(f, VOCABULARIES[f], v))
    np.testing.assert_allclose(layer(encoded(spec)).numpy(), expected, rtol=1e-5)
    # every known value and the missing value own a row: no two of them share one
    ids = {vocabulary_row("c", ["x", "y"], v) for v in ["x", "y", ""]}
    assert len(ids) == 3 and 0 not in ids


LAYOUTS: dict[str, Callable[[FeatureSpec], FieldEmbedding]] = {
    "unified": UnifiedEmbedding,
    "per_feature": lambda s: PerFeatureHashEmbedding(s, {"c": 5, "m": 3, "v": 4}),
    "collisionless": lambda s: CollisionlessEmbedding(s, VOCABULARIES),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_from_config_round_trip(layout: str) -> None:
    spec = tiny_spec(num_tables=1)
    layer = LAYOUTS[layout](spec)
    out = layer(encoded(spec))
    config = layer.get_config()
    clone = type(layer).from_config(config)
    clone(encoded(spec))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(encoded(spec)).numpy(), out.numpy())
    assert clone.get_config() == config
    serialized = keras.layers.serialize(layer)
    assert type(keras.layers.deserialize(serialized)) is type(layer)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_saved_model_reload_gives_identical_outputs(layout: str, tmp_path: Path) -> None:
    spec = tiny_spec(rows=9, num_tables=3)
    layer = LAYOUTS[layout](spec)
    expected = layer(encoded(spec)).numpy()
    module = tf.Module()
    module.layer = layer
    module.embed = tf.function(
        lambda features: layer(features),
        input_signature=[
            {
                "n": tf.TensorSpec([None], tf.float32),
                "c": tf.TensorSpec([None, 2], tf.int64),
                "m": tf.RaggedTensorSpec([None, None, 2], tf.int64, ragged_rank=1),
                "v": tf.TensorSpec([None, 2], tf.int64),
            }
        ],
    )
    tf.saved_model.save(module, str(tmp_path / "model"))
    reloaded = tf.saved_model.load(str(tmp_path / "model"))
    np.testing.assert_array_equal(reloaded.embed(encoded(spec)).numpy(), expected)


@pytest.mark.parametrize("budget", [200_000, 1_000_000])
def test_parameter_counts_equal_the_budget_plan(budget: int) -> None:
    spec = criteo().replace(table=TableSpec(rows=16, width=8, num_tables=2))
    raw = {n: tf.constant(["1", ""]) for n in spec.field_names}
    cardinalities = {f.name: 3 for f in spec.categorical_fields}
    plan = plan_budget(spec, budget, cardinalities)
    sized = spec.replace(table=plan.table)
    features = encode_features(sized, raw)
    layers = {
        "unified": UnifiedEmbedding(sized),
        "per_feature": PerFeatureHashEmbedding(sized, plan.per_feature_rows),
        "collisionless": CollisionlessEmbedding(
            sized, {f.name: ["a", "b", "c"] for f in sized.categorical_fields}
        ),
    }
    for name, layer in layers.items():
        assert layer(features).shape == (2, 39, 16)
        assert layer.count_params() == getattr(plan.params, name), name
    assert plan.params.unified <= budget // 4
    assert plan.params.per_feature <= budget // 4


def test_budget_counts_vocabulary_fields_and_projections() -> None:
    spec = tiny_spec(probes=3)
    layer = UnifiedEmbedding(spec)
    layer(encoded(spec))
    plan = plan_budget(spec, 4 * 2000)
    sized = UnifiedEmbedding(spec.replace(table=plan.table))
    sized(encoded(spec))
    assert sized.count_params() == plan.params.unified


def test_per_feature_rows_are_validated() -> None:
    with pytest.raises(ValueError, match=r"Received: `rows_per_field=\{'c': 5\}`"):
        PerFeatureHashEmbedding(tiny_spec(), {"c": 5})


def test_collisionless_needs_every_vocabulary() -> None:
    with pytest.raises(ValueError, match=r"Received none for \['m'\]"):
        CollisionlessEmbedding(tiny_spec(), {"c": ["x"]})


def test_sub_tables_and_vocabulary_tables_start_different() -> None:
    """A reused unseeded initializer would give every table the same values."""
    spec = tiny_spec(rows=9, num_tables=3, width=8)
    layer = UnifiedEmbedding(spec)
    layer(encoded(spec))
    first, second, _ = (t.numpy() for t in layer.tables)
    assert not np.allclose(first, second)
    assert not np.allclose(first[:3], layer.vocabulary_tables["v"].numpy()[:3])
