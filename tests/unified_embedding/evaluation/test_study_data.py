"""Study data: generated ceilings, the user's files with their schema, real samples when
present."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from unified_embedding.evaluation.dataset_entries import REAL_SAMPLES, DatasetError
from unified_embedding.evaluation.study_data import (
    GeneratedData,
    generated_data,
    load_datasets,
    real_sample,
)
from unified_embedding.metrics.exact import roc_auc
from unified_embedding.synthetic import generate

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


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


def write_user_dataset(root: Path, rows: int = 200) -> dict[str, str]:
    """A dataset of the user's: two CSV files (one gzipped) with a header, a label column, a
    row id to ignore, categorical fields and a multi-valued one; no numeric field. Returns the
    notebook's dataset entry."""
    rng = np.random.default_rng(0)
    lines = [
        f"{i},{rng.integers(0, 2)},u{rng.integers(0, 30)},"
        f"{'|'.join(rng.choice(['rock', 'jazz', 'folk', 'pop'], rng.integers(1, 4)))},"
        f"{rng.choice(['paris', 'rome', ''])}"
        for i in range(rows)
    ]
    header = "id,clicked,user,genres,city\n"
    half = rows // 2
    (root / "part-0.csv").write_text(header + "\n".join(lines[:half]) + "\n")
    (root / "part-1.csv.gz").write_bytes(
        gzip.compress((header + "\n".join(lines[half:]) + "\n").encode())
    )
    schema = {
        "name": "music",
        "columns": ["id", "clicked", "user", "genres", "city"],
        "label": "clicked",
        "ignore": ["id"],
        "multi_valued": {"genres": "|"},
    }
    (root / "music_schema.json").write_text(json.dumps(schema))
    return {
        "name": "music",
        "path": str(root / "part-*.csv*"),
        "schema": str(root / "music_schema.json"),
    }


def test_load_datasets_reads_the_users_files_with_their_schema_file(tmp_path: Path) -> None:
    entry = write_user_dataset(tmp_path)
    loaded = load_datasets([entry, "criteo"], shared_data=tmp_path / "no-samples-here")
    assert loaded.skipped == ["criteo"]  # a shared sample is optional
    (data,) = loaded.data
    assert data.name == "music" and data.ceiling_auc is None
    kinds = {f.name: f.kind for f in data.spec.fields}
    assert kinds == {"user": "categorical", "genres": "multi_valued", "city": "categorical"}
    assert data.spec.numeric_fields == ()
    assert (len(data.train), len(data.evaluation)) == (160, 40)  # both files, 20% held out
    cells = np.concatenate([data.train.columns["genres"], data.evaluation.columns["genres"]])
    assert any("|" in c for c in cells)  # kept whole: the model splits on the separator
    small = load_datasets([entry], "", train_rows=50).data[0]
    assert len(small.train) == 50 and len(small.evaluation) == 40


def test_load_datasets_resolves_shared_sample_names_against_shared_data(tmp_path: Path) -> None:
    (tmp_path / "frappe").mkdir()
    lines = [f"{i % 2}," + ",".join(f"v{(i * k) % 7}" for k in range(10)) for i in range(30)]
    header = "label," + ",".join(f"f{i}" for i in range(10))
    (tmp_path / REAL_SAMPLES["frappe"]).write_text("\n".join([header, *lines]) + "\n")
    (data,) = load_datasets(["frappe"], tmp_path).data
    assert data.name == "frappe" and len(data.train) + len(data.evaluation) == 30
    assert load_datasets(["frappe"], "").skipped == ["frappe"]  # "" skips the samples


def test_rows_that_do_not_fit_the_schema_fail_naming_the_dataset_and_line(
    tmp_path: Path,
) -> None:
    entry = write_user_dataset(tmp_path)
    with pytest.raises(
        DatasetError,
        match=r"dataset `music` do not fit `schema=.criteo.`: .*part-0.csv:1: expected 40",
    ):
        load_datasets([{**entry, "schema": "criteo"}], "")
