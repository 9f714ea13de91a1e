"""Collision-free vocabularies: millions of values load in linear time, or are refused above the
documented limit (`spec.MAX_VOCABULARY_VALUES`).

A schema with a 2,000,000-value vocabulary once produced nothing after 300 s: FieldSpec's
duplicate check counted each value in the whole tuple (O(n^2)), and NumPy 2's hash-based
`np.unique` took seconds per call on the fingerprints. These tests use 200,000 values, which the
quadratic check alone would have kept busy for hours.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from unified_embedding.budget.plan import plan_budget
from unified_embedding.contract import fields as fields_module
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec, FieldSpec, SpecError
from unified_embedding.contract.vocabulary import sorted_unique, vocabulary_rows

VALUES = 200_000


@pytest.fixture(scope="module")
def big_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vocabulary")
    cities = [f"c{i}" for i in range(VALUES)]
    schema = {
        "name": "big",
        "columns": ["label", "city", "x", "age"],
        "label": "label",
        "numeric": ["age"],
        "vocabulary": {"city": cities},
    }
    (root / "schema.json").write_text(json.dumps(schema))
    rows = [
        "label,city,x,age",
        *(f"{i % 2},c{i * 7919 % (2 * VALUES)},x{i % 5},{i}" for i in range(200)),
    ]
    (root / "rows.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_large_vocabulary_round_trips_and_sizes_its_table(big_schema: Path) -> None:
    spec = load_schema(big_schema / "schema.json")
    city = spec.field("city")
    assert city.vocabulary is not None and len(city.vocabulary) == VALUES
    again = FeatureSpec.from_json(spec.to_json())
    assert again == spec and again.fingerprint == spec.fingerprint
    assert vocabulary_rows("city", city.vocabulary) == VALUES + 2  # + missing, + out of vocab
    plan = plan_budget(spec, 20_000_000)
    assert plan.params.unified is not None and plan.params.unified <= 20_000_000 // 4


def test_a_large_vocabulary_preprocesses(big_schema: Path, tmp_path: Path) -> None:
    from pipelines.preprocess import run

    stats = run(
        [
            "--input",
            str(big_schema / "rows.csv"),
            "--schema",
            str(big_schema / "schema.json"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert stats["rows_read"] == stats["rows_valid"] == 200
    written = FeatureSpec.load(tmp_path / "out" / "spec.json")
    assert (
        written.field("city").vocabulary
        == load_schema(big_schema / "schema.json").field("city").vocabulary
    )


def test_repeated_values_are_named() -> None:
    with pytest.raises(SpecError, match=r"Received duplicates \['a', 'b'\] for field `c`"):
        FieldSpec("c", vocabulary=("a", "b", "a", "x", "b"))
    with pytest.raises(SpecError, match=r"list of strings. Received: `vocabulary=\['a', 1\]`"):
        FieldSpec("c", vocabulary=("a", 1))  # type: ignore[arg-type]


def test_vocabularies_above_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fields_module, "MAX_VOCABULARY_VALUES", 3)
    FieldSpec("c", vocabulary=("a", "b", "c"))
    with pytest.raises(
        SpecError,
        match=r"at most 3 values; leave it out to hash a field this "
        r"large. Received 4 values for field `c`",
    ):
        FieldSpec("c", vocabulary=("a", "b", "c", "d"))


@pytest.mark.parametrize("size", [0, 1, 7, 10_000])
def test_sorted_unique_equals_numpys_unique(size: int) -> None:
    values = np.random.default_rng(size).integers(-50, 50, size, dtype=np.int64)
    np.testing.assert_array_equal(sorted_unique(values), np.unique(values))
    assert sorted_unique(values).dtype == np.int64
