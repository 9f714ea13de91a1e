"""Raw values -> model inputs: numeric transforms checked against NumPy, fields hashed by name."""

import numpy as np
import pytest
import tensorflow as tf

from unified_embedding.contract.features import (
    encode_features,
    encode_packed,
    parse_numeric,
    transform_numeric,
)
from unified_embedding.contract.hashing import fingerprint
from unified_embedding.contract.schemas import from_short_form

VALUES = np.array([-7.0, -1.0, 0.0, 0.5, 2.0, 3.0, 1000.0, np.nan], dtype=np.float32)


def numpy_transform(x: np.ndarray, transform: str) -> np.ndarray:
    if transform == "identity":
        return x
    if transform == "log1p":
        return np.sign(x) * np.log1p(np.abs(x))
    with np.errstate(invalid="ignore", divide="ignore"):
        squared = np.sign(x) * np.floor(np.log(np.abs(x)) ** 2)
    return np.where(np.abs(x) > 2, squared, x)


@pytest.mark.parametrize("transform", ["identity", "log1p", "log_square"])
def test_numeric_transforms_match_numpy(transform: str) -> None:
    got = transform_numeric(tf.constant(VALUES), transform).numpy()
    np.testing.assert_allclose(got, numpy_transform(VALUES, transform), rtol=1e-6)
    assert np.isnan(got[-1])


def test_unknown_transform_is_named() -> None:
    with pytest.raises(ValueError, match=r"Received: `transform='sqrt'`"):
        transform_numeric(tf.constant([1.0]), "sqrt")


def test_numeric_strings_parse_with_empty_as_missing() -> None:
    got = parse_numeric(tf.constant(["3", "", " ", "-2.5"])).numpy()
    assert got[0] == 3.0 and np.isnan(got[1]) and np.isnan(got[2]) and got[3] == -2.5


def test_encode_features_all_kinds() -> None:
    spec = from_short_form(
        {
            "columns": ["y", "age", "genres", "city", "item"],
            "label": "y",
            "numeric": {"age": "log1p"},
            "multi_valued": {"genres": "|"},
            "vocabulary": {"city": ["paris", "rome"]},
            "probes": 3,
        }
    )
    raw = {
        "y": tf.constant(["1", "0"]),
        "age": tf.constant(["30", ""]),
        "genres": tf.constant(["drama|comedy", ""]),
        "city": tf.constant(["rome", "oslo"]),
        "item": tf.constant([17, 4]),  # integer ids hash like their text spelling
    }
    out = encode_features(spec, raw)
    assert set(out) == {"age", "genres", "city", "item"}
    np.testing.assert_allclose(out["age"].numpy()[0], np.log1p(30.0), rtol=1e-6)
    assert out["genres"].row_lengths().numpy().tolist() == [2, 1]
    assert out["genres"].flat_values.shape == (3, 3)
    np.testing.assert_array_equal(
        out["item"].numpy(), fingerprint(tf.constant(["17", "4"]), "item", 3).numpy()
    )


def test_encode_features_names_missing_fields() -> None:
    spec = from_short_form({"columns": ["y", "a", "b"], "label": "y"})
    with pytest.raises(KeyError, match=r"missing fields \['b'\]"):
        encode_features(spec, {"a": tf.constant(["x"])})


def test_numeric_transform_does_not_depend_on_batch_size() -> None:
    """Vectorised and scalar float32 log1p kernels differ by an ulp; the result must not."""
    rng = np.random.default_rng(0)
    values = np.exp(rng.uniform(0, 15, 4099)).round().astype(np.float32)
    for transform in ("log1p", "log_square"):
        batched = transform_numeric(tf.constant(values), transform).numpy()
        one_by_one = [
            transform_numeric(tf.constant(v[None]), transform).numpy()[0] for v in values[:300]
        ]
        np.testing.assert_array_equal(batched[:300], one_by_one)


@pytest.mark.parametrize("probes", [1, 3])
def test_encode_packed_equals_encode_features_field_by_field(probes: int) -> None:
    """The `packed` signature's matrix encoding gives every field exactly what the per-field
    encoding gives: every kind, every transform, missing tokens and empty cells."""
    spec = from_short_form(
        {
            "columns": ["y", "n1", "c1", "g", "n2", "city", "n3", "n4", "c2"],
            "label": "y",
            "numeric": {"n1": "log1p", "n2": "identity", "n3": "log_square", "n4": "log1p"},
            "multi_valued": {"g": "|"},
            "vocabulary": {"city": ["paris", "rome"]},
            "missing": ["null", "\\N"],
            "probes": probes,
        }
    )
    cells = [
        ["a", "x|y", "rome", ""],
        ["", "", "oslo", "null"],
        ["null", "z", "", "\\N"],
        ["\u00e9t\u00e9", "x||y", "paris", "b"],
    ]
    numbers = [[3.0, -1.5, 7.0, 0.0], [np.nan, 2.0, -3.0, 1e6], [0.5, np.nan, np.nan, -2.0]]
    numbers.append([1.0, 1.0, 1.0, 1.0])
    categorical = tf.constant(cells)
    numeric = tf.constant(numbers, tf.float32)
    names = [f.name for f in spec.categorical_fields]
    assert names == ["c1", "g", "city", "c2"]
    raw = {name: categorical[:, i] for i, name in enumerate(names)}
    raw.update({f.name: numeric[:, i] for i, f in enumerate(spec.numeric_fields)})
    expected, got = encode_features(spec, raw), encode_packed(spec, categorical, numeric)
    assert list(got) == [f.name for f in spec.fields]
    for name, value in expected.items():
        if isinstance(value, tf.RaggedTensor):
            assert got[name].to_list() == value.to_list(), name
        else:
            np.testing.assert_array_equal(got[name].numpy(), value.numpy(), err_msg=name)
            assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
