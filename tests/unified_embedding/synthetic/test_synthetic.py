"""Generated Criteo-format data: determinism, format, distributions and the planted model."""

from __future__ import annotations

import gzip
import math
import re
from pathlib import Path

import numpy as np
import pytest

from unified_embedding.metrics.exact import roc_auc
from unified_embedding.synthetic import (
    CATEGORY_FIELDS,
    COLUMNS,
    INTEGER_FIELDS,
    SyntheticBatch,
    SyntheticConfig,
    generate,
    planted_model,
    write_tsv,
)

ROWS = 20_000
HEX = re.compile(r"[0-9a-f]{8}")
INTEGER = re.compile(r"-?[0-9]+")
Parsed = tuple[SyntheticBatch, list[list[str]]]


@pytest.fixture(scope="module")
def batch_and_lines() -> Parsed:
    batch = generate(ROWS)
    text = batch.to_tsv_bytes().decode("ascii")
    assert text.endswith("\n")
    return batch, [line.split("\t") for line in text[:-1].split("\n")]


def test_same_seed_gives_identical_bytes_even_after_rebuilding_the_model() -> None:
    first = generate(3000, SyntheticConfig(seed=7)).to_tsv_bytes()
    planted_model.cache_clear()
    assert generate(3000, SyntheticConfig(seed=7)).to_tsv_bytes() == first
    assert generate(3000, SyntheticConfig(seed=8)).to_tsv_bytes() != first


def test_chunking_never_changes_the_rows(tmp_path: Path) -> None:
    rows = 20_000  # spans three internal blocks, the last one partial
    whole = generate(rows).to_tsv_bytes()
    assert (
        generate(7_000).to_tsv_bytes() + generate(rows - 7_000, start_row=7_000).to_tsv_bytes()
        == whole
    )
    for chunk_rows in (3_001, 8_192, 100_000):
        path = tmp_path / f"chunks_{chunk_rows}.tsv"
        write_tsv(path, rows, chunk_rows=chunk_rows)
        assert path.read_bytes() == whole, chunk_rows


def test_gzip_output_is_reproducible_and_decompresses_to_the_tsv(tmp_path: Path) -> None:
    write_tsv(tmp_path / "a.tsv.gz", 5_000)
    write_tsv(tmp_path / "b.tsv.gz", 5_000)
    compressed = (tmp_path / "a.tsv.gz").read_bytes()
    assert compressed == (tmp_path / "b.tsv.gz").read_bytes()  # no name or mtime in header
    assert gzip.decompress(compressed) == generate(5_000).to_tsv_bytes()


def test_lines_are_criteo_format(batch_and_lines: Parsed) -> None:
    _, lines = batch_and_lines
    assert len(lines) == ROWS
    assert {len(line) for line in lines} == {len(COLUMNS)} == {40}
    assert {line[0] for line in lines} == {"0", "1"}
    integer_cells = [cell for line in lines for cell in line[1:14]]
    category_cells = [cell for line in lines for cell in line[14:]]
    assert all(cell == "" or INTEGER.fullmatch(cell) for cell in integer_cells)
    assert all(cell == "" or HEX.fullmatch(cell) for cell in category_cells)
    assert "" in integer_cells and "" in category_cells
    assert any(line[2].startswith("-") for line in lines)  # I2 has a few negatives
    assert not any(line[1].startswith("-") for line in lines)


def test_lines_encode_the_arrays(batch_and_lines: Parsed) -> None:
    batch, lines = batch_and_lines
    cells = np.array(lines, dtype=object)  # (rows, 40)
    np.testing.assert_array_equal(cells[:, 0].astype(int), batch.labels)
    parsed = np.array(
        [[float(c) if c else math.nan for c in row] for row in cells[:, 1:14]], dtype=np.float64
    )
    np.testing.assert_array_equal(parsed, batch.integers)
    categories = batch.categories
    np.testing.assert_array_equal(cells[:, 14:] == "", categories < 0)
    for f in range(len(CATEGORY_FIELDS)):
        present = categories[:, f] >= 0
        pairs = set(zip(categories[present, f].tolist(), cells[present, 14 + f], strict=True))
        ids = {i for i, _ in pairs}
        strings = {s for _, s in pairs}
        assert len(pairs) == len(ids) == len(strings), f"C{f + 1}: id <-> hex is not one-to-one"


def test_hex_strings_depend_only_on_field_and_id() -> None:
    seen: dict[tuple[int, int], str] = {}
    for seed in (7, 8):
        batch = generate(2_000, SyntheticConfig(seed=seed))
        lines = batch.to_tsv_bytes().decode("ascii").splitlines()
        for ids, line in zip(batch.categories.tolist(), lines, strict=True):
            for f, (i, text) in enumerate(zip(ids, line.split("\t")[14:], strict=True)):
                assert seen.setdefault((f, i), text) == text


def test_missing_rates_follow_the_config(batch_and_lines: Parsed) -> None:
    batch, _ = batch_and_lines
    config = SyntheticConfig()
    integer_missing = np.isnan(batch.integers).mean(axis=0)
    category_missing = (batch.categories < 0).mean(axis=0)
    np.testing.assert_allclose(integer_missing, config.integer_missing_rates, atol=0.02)
    np.testing.assert_allclose(category_missing, config.category_missing_rates, atol=0.02)
    assert max(config.category_missing_rates) == pytest.approx(0.4)
    assert min(config.category_missing_rates) == 0.0


def test_cardinalities_span_ten_to_a_million() -> None:
    cardinalities = SyntheticConfig().cardinalities
    assert len(cardinalities) == len(CATEGORY_FIELDS)
    assert cardinalities[0] == 10 and cardinalities[-1] >= 1_000_000
    assert np.all(np.diff(cardinalities) > 0)
    ratios = np.diff(np.log(cardinalities))
    np.testing.assert_allclose(ratios, ratios.mean(), atol=0.05)  # log-uniform spread


def test_values_are_zipf_distributed(batch_and_lines: Parsed) -> None:
    batch, _ = batch_and_lines
    config = SyntheticConfig()
    categories = batch.categories
    assert np.all(categories < np.array(config.cardinalities))
    # Oracle: P(rank 0) = 1 / sum_r r^-s, for the 10-value C1 (no missing values).
    harmonic = sum(r**-config.zipf_exponent for r in range(1, 11))
    assert np.mean(categories[:, 0] == 0) == pytest.approx(1 / harmonic, abs=0.02)
    # Shape: the head value of a large field dwarfs the median seen value.
    counts = np.bincount(categories[categories[:, 13] >= 0, 13])
    assert counts[0] > 50 * np.median(counts[counts > 0])
    assert np.unique(categories[:, -1]).size > 2_000  # the 1M field has a long tail


def test_labels_follow_the_planted_model(tmp_path: Path) -> None:
    report = write_tsv(tmp_path / "data.tsv", ROWS)
    batch = generate(ROWS)
    assert 0.2 <= report.label_rate <= 0.3
    assert report.label_rate == pytest.approx(batch.labels.mean())
    assert report.label_rate == pytest.approx(batch.probabilities.mean(), abs=0.02)
    assert report.planted_auc == roc_auc(batch.labels, batch.probabilities)
    assert report.planted_auc > 0.7
    assert set(report.to_dict()) == {
        "rows",
        "label_rate",
        "planted_auc",
        "seconds",
        "rows_per_second",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["data.tsv"]  # no partial file left


def test_only_top_k_values_carry_weight() -> None:
    config = SyntheticConfig(weighted_top_k=50)
    model = planted_model(config)
    for weights, cardinality in zip(model.category_weights, config.cardinalities, strict=True):
        assert weights.shape == (min(cardinality, 50) + 1,) and weights[-1] == 0.0
    batch = generate(2_000, config)
    tail = batch.categories.copy()
    large = config.cardinalities.index(63)  # first field with more than K = 50 values
    tail[:, large:] = 60  # a rank >= K in every large field
    missing = batch.categories.copy()
    missing[:, large:] = -1
    np.testing.assert_array_equal(
        model.logits(batch.integers, tail), model.logits(batch.integers, missing)
    )


def test_planted_model_has_the_documented_interactions() -> None:
    model = planted_model(SyntheticConfig())
    assert len(model.pairs) == 6 and len(model.triples) == 2
    assert sum(b in INTEGER_FIELDS for _, b in model.pairs) == 2
    assert all(f in CATEGORY_FIELDS for triple in model.triples for f in triple)


def test_signal_scale_zero_gives_uninformative_probabilities() -> None:
    batch = generate(1_000, SyntheticConfig(signal_scale=0.0, label_rate=0.3))
    np.testing.assert_allclose(batch.probabilities, 0.3, rtol=1e-6)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", -1),
        ("min_cardinality", 1),
        ("label_rate", 1.0),
        ("category_missing_rates", (0.1,) * 3),
        ("integer_missing_rates", (1.0,) * 13),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"`{field}` should .* Received: `{field}="):
        SyntheticConfig(**{field: value})  # type: ignore[arg-type]


def test_generate_and_write_reject_bad_sizes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`rows` should be non-negative"):
        generate(-1)
    with pytest.raises(ValueError, match="`chunk_rows` should be >= 1"):
        write_tsv(tmp_path / "x.tsv", 10, chunk_rows=0)
    assert len(generate(0)) == 0 and generate(0).to_tsv_bytes() == b""


def test_columns_are_the_criteo_schemas() -> None:
    from unified_embedding.contract.schemas import criteo

    spec = criteo()
    assert spec.input_format.columns == COLUMNS
    assert tuple(f.name for f in spec.numeric_fields) == INTEGER_FIELDS
    assert tuple(f.name for f in spec.categorical_fields) == CATEGORY_FIELDS
