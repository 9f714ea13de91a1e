"""The exported model, loaded from a base or a version: its spec checked against its
signatures, raw and packed rows scored alike, and each row's strongest field pairs against a
NumPy oracle."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from unified_embedding.contract.schemas import criteo
from unified_embedding.exported.model import (
    ExportedModel,
    InconsistentModel,
    raw_batches,
    top_pairs,
)
from unified_embedding.rows.reader import read_rows


def _oracle_pairs(attention: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean over layers and heads, the diagonal left out, the k largest per row."""
    weights = attention.astype(np.float64).mean(axis=(1, 2))
    rows, fields, _ = weights.shape
    flat = weights.reshape(rows, -1)
    flat[:, np.arange(fields) * (fields + 1)] = -np.inf
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(flat, order, axis=1)


def test_top_pairs_leave_out_a_field_with_itself() -> None:
    rng = np.random.default_rng(0)
    attention = rng.random((5, 2, 3, 4, 4)).astype(np.float32)  # (rows, layers, heads, F, F)
    pairs, weights = top_pairs(tf.constant(attention), 3)
    expected_pairs, expected_weights = _oracle_pairs(attention, 3)
    np.testing.assert_array_equal(pairs.numpy(), expected_pairs)
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-6)
    pairs, _ = top_pairs(tf.constant(attention), 100)  # at most every ordered pair
    assert pairs.shape == (5, 12) and not np.any(pairs.numpy() % 5 == 0)  # no (i, i)


def test_a_base_or_a_version_loads_the_same_model(exported_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = tmp_path / "export"
    for name in ("3", "10", "latest"):
        shutil.copytree(exported_model.version, base / name)
    newest = ExportedModel.load(base)
    assert (newest.path, newest.version) == (str(base / "10"), 10)
    assert ExportedModel.load(base / "3").version == 3
    latest = ExportedModel.load(base / "latest")
    assert latest.version is None and latest.name == "latest"
    assert newest.spec == exported_model.spec
    with pytest.raises(FileNotFoundError, match="no SavedModel at"):
        ExportedModel.load(tmp_path / "nothing")


def test_raw_and_packed_rows_score_alike_and_pairs_match_the_oracle(exported_model) -> None:  # type: ignore[no-untyped-def]
    model = ExportedModel.load(exported_model.version)
    spec = model.spec
    rows = read_rows(criteo(), exported_model.rows_file)
    scores = model.score_rows(rows, batch_size=64)
    assert scores.shape == (len(rows),) and np.std(scores) > 1e-4
    categorical = np.stack([rows.columns[f.name] for f in spec.categorical_fields], axis=1)
    numeric = np.stack(
        [
            np.array([float(v) if v else np.nan for v in rows.columns[f.name]], np.float32)
            for f in spec.numeric_fields
        ],
        axis=1,
    )
    np.testing.assert_allclose(model.score_packed(categorical, numeric), scores, atol=1e-6)
    attention = model.attention_rows(rows.take(np.arange(20)))
    fields = len(spec.fields)
    assert attention.shape[0] == 20 and attention.shape[-2:] == (fields, fields)
    sample = rows.take(np.arange(20))
    (raw,) = list(raw_batches(spec, sample, 20))
    pairs, weights = model.pairs(raw, 4)
    expected_pairs, expected_weights = _oracle_pairs(attention, 4)
    np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5)
    np.testing.assert_array_equal(pairs.numpy(), expected_pairs)


def test_a_spec_disagreeing_with_the_signatures_is_refused(exported_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    version = tmp_path / "5"
    shutil.copytree(exported_model.version, version)
    spec_path = version / "assets" / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec["fields"] = spec["fields"][1:]
    spec.pop("fingerprint")
    spec_path.write_text(json.dumps(spec))
    with pytest.raises(InconsistentModel, match=r"disagrees with spec.json|takes"):
        ExportedModel.load(version)
