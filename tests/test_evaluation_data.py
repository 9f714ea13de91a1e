"""Study data and model lookup: generated ceilings, real samples when present, newest version."""

from pathlib import Path

import numpy as np
import pytest

from unified_embedding.evaluation.scoring import resolve_version
from unified_embedding.evaluation.study_data import (
    REAL_SAMPLES,
    GeneratedData,
    generated_data,
    real_sample,
)
from unified_embedding.metrics import roc_auc
from unified_embedding.synthetic import generate

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_generated_data_splits_consecutive_rows_and_scores_the_planted_ceiling() -> None:
    config = GeneratedData(rows=300, eval_rows=200)
    data = generated_data(config)
    assert (len(data.train), len(data.evaluation)) == (300, 200)
    batch = generate(500, config.synthetic)
    np.testing.assert_array_equal(data.evaluation.labels, batch.labels[300:])
    assert data.ceiling_auc == pytest.approx(roc_auc(batch.labels[300:], batch.probabilities[300:]))


def test_real_sample_is_none_when_absent(tmp_path: Path) -> None:
    assert real_sample("criteo", tmp_path) is None
    with pytest.raises(ValueError, match="name"):
        real_sample("movielens", tmp_path)


@pytest.mark.parametrize("name", sorted(REAL_SAMPLES))
def test_real_sample_reads_and_splits_the_shared_file(name: str) -> None:
    if not (SHARED_DATA / REAL_SAMPLES[name]).is_file():
        pytest.skip(f"no {name} sample under {SHARED_DATA}")
    data = real_sample(name, SHARED_DATA, eval_fraction=0.2, seed=0)
    assert data is not None and data.ceiling_auc is None
    total = len(data.train) + len(data.evaluation)
    assert len(data.evaluation) == round(0.2 * total)
    assert set(np.unique(data.train.labels)) == {0.0, 1.0}


def test_resolve_version_picks_the_newest_numeric_version(tmp_path: Path) -> None:
    for version in ("9", "10", "11"):
        (tmp_path / version).mkdir()
    for version in ("9", "10"):  # 11 is incomplete: no saved_model.pb
        (tmp_path / version / "saved_model.pb").write_bytes(b"")
    (tmp_path / ".12.partial").mkdir()
    assert resolve_version(tmp_path) == tmp_path / "10"  # numeric order, not text order
    assert resolve_version(tmp_path / "9") == tmp_path / "9"
    with pytest.raises(FileNotFoundError):
        resolve_version(tmp_path / "11")
