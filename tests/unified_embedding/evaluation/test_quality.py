"""Calibration table, score histogram and AUC by slice against hand counts and NumPy oracles."""

import math

import numpy as np
import pytest

from unified_embedding.evaluation.quality import (
    auc_by_slice,
    calibration_table,
    expected_calibration_error,
    score_histogram,
    summary_metrics,
)


def pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Oracle: the fraction of (positive, negative) pairs ranked right, ties counting 1/2."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_calibration_table_buckets_sorted_scores_into_equal_groups() -> None:
    # scores 0.1..0.6 (shuffled), labels chosen so bucket means are hand-checkable:
    #   bucket 0: scores 0.1, 0.2 labels 0, 0 | 1: 0.3, 0.4 labels 0, 1 | 2: 0.5, 0.6 labels 1, 1
    scores = np.array([0.4, 0.1, 0.6, 0.3, 0.2, 0.5])
    labels = np.array([1, 0, 1, 0, 0, 1])
    table = calibration_table(labels, scores, buckets=3)
    assert table["rows"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(table["mean_predicted"], [0.15, 0.35, 0.55])
    np.testing.assert_allclose(table["observed_ctr"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(table["min_score"], [0.1, 0.3, 0.5])
    # ECE = (|0.15 - 0| + |0.35 - 0.5| + |0.55 - 1|) / 3
    assert expected_calibration_error(table) == pytest.approx((0.15 + 0.15 + 0.45) / 3)


def test_calibration_table_of_many_rows_matches_numpy_quantile_groups() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random(1000)
    labels = (rng.random(1000) < scores).astype(int)
    table = calibration_table(labels, scores, buckets=10)
    order = np.argsort(scores)
    for i, group in enumerate(order.reshape(10, 100)):
        assert table.loc[i, "observed_ctr"] == pytest.approx(labels[group].mean())
        assert table.loc[i, "mean_predicted"] == pytest.approx(scores[group].mean())
    assert table["rows"].sum() == 1000
    assert expected_calibration_error(table) < 0.1  # labels drawn from the scores


def test_calibration_table_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="buckets"):
        calibration_table([0, 1], [0.1, 0.2], buckets=0)
    with pytest.raises(ValueError, match="equal-length"):
        calibration_table([0, 1], [0.1], buckets=2)


def test_score_histogram_counts_by_label_and_includes_one() -> None:
    scores = np.array([0.0, 0.24, 0.25, 0.5, 0.99, 1.0])
    labels = np.array([0, 1, 0, 1, 1, 0])
    hist = score_histogram(labels, scores, bins=4, zoom=False)
    assert hist["left"].tolist() == [0.0, 0.25, 0.5, 0.75]
    assert hist["negatives"].tolist() == [1, 1, 0, 1]  # 0.0 | 0.25 | - | 1.0
    assert hist["positives"].tolist() == [1, 0, 1, 1]  # 0.24 | - | 0.5 | 0.99


def test_score_histogram_zooms_to_the_range_of_low_ctr_scores() -> None:
    # a low-CTR model: every score under 0.05; bins over [0, 1] would put them all in one
    rng = np.random.default_rng(4)
    scores = 0.05 * rng.beta(2, 30, 5000)
    labels = (rng.random(5000) < scores).astype(int)
    assert scores.max() < 0.05
    hist = score_histogram(labels, scores, bins=20)
    edges = np.linspace(scores.min(), scores.max(), 21)
    np.testing.assert_allclose(hist["left"], edges[:-1])
    np.testing.assert_allclose(hist["right"], edges[1:])
    np.testing.assert_array_equal(hist["negatives"], np.histogram(scores[labels == 0], edges)[0])
    np.testing.assert_array_equal(hist["positives"], np.histogram(scores[labels == 1], edges)[0])
    assert hist["negatives"].sum() + hist["positives"].sum() == 5000  # min and max included
    counts = hist["negatives"] + hist["positives"]
    assert counts.max() < 0.5 * 5000 and (counts > 0).sum() >= 10  # spread, not one bin
    whole = score_histogram(labels, scores, bins=20, zoom=False)
    assert whole["negatives"].iloc[0] + whole["positives"].iloc[0] == 5000  # the old picture
    (one,) = score_histogram([0, 1], [0.3, 0.3], bins=1).itertuples()
    assert one.left < 0.3 < one.right and (one.negatives, one.positives) == (1, 1)


def test_auc_by_slice_matches_pairwise_oracle_per_value() -> None:
    rng = np.random.default_rng(1)
    values = rng.choice(["a", "b", "c", "d"], size=600, p=[0.4, 0.3, 0.2, 0.1])
    scores = rng.random(600)
    labels = (rng.random(600) < scores).astype(int)
    table = auc_by_slice(labels, scores, values, top=2, min_rows=10)
    assert table["value"].tolist() == ["a", "b", "(other)"]
    assert table["rows"].sum() == 600
    for row in table.itertuples():
        mask = np.isin(values, ["c", "d"]) if row.value == "(other)" else values == row.value
        assert row.rows == mask.sum()
        assert row.auc == pytest.approx(pairwise_auc(labels[mask], scores[mask]))
        assert row.observed_ctr == pytest.approx(labels[mask].mean())


def test_auc_by_slice_leaves_small_or_one_class_slices_undefined() -> None:
    values = np.array(["x"] * 20 + ["y"] * 5 + ["z"] * 20)
    labels = np.array([0, 1] * 10 + [0, 1, 0, 1, 0] + [1] * 20)
    scores = np.linspace(0.0, 1.0, 45)
    table = auc_by_slice(labels, scores, values, top=3, min_rows=10).set_index("value")
    assert not math.isnan(table.loc["x", "auc"])
    assert math.isnan(table.loc["y", "auc"])  # 5 rows < min_rows
    assert math.isnan(table.loc["z", "auc"])  # positives only
    assert not table["reliable"].any()  # fewer than 30 rows of the rarer class everywhere


def test_auc_by_slice_marks_slices_with_few_of_a_class_unreliable() -> None:
    # slice a: 40 positives, 60 negatives; b: 29 positives, 71 negatives; c: 70 / 30
    values = np.array(["a"] * 100 + ["b"] * 100 + ["c"] * 100)
    labels = np.concatenate([np.arange(100) < 40, np.arange(100) < 29, np.arange(100) < 70])
    scores = np.random.default_rng(5).random(300)
    table = auc_by_slice(labels.astype(int), scores, values, top=3).set_index("value")
    assert table["reliable"].to_dict() == {"a": True, "b": False, "c": True}
    assert table.loc["b", "positives"] == 29 and not math.isnan(table.loc["b", "auc"])


def test_summary_metrics_match_metric_oracles() -> None:
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.6, 0.4, 0.9])
    out = summary_metrics(labels, scores)
    assert out["auc"] == pytest.approx(pairwise_auc(labels, scores))  # 3 of 4 pairs
    expected = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert out["logloss"] == pytest.approx(expected)
    assert out["calibration"] == pytest.approx(0.5 / 0.5)


def test_auc_by_slice_puts_a_multi_valued_row_in_each_of_its_values_slices() -> None:
    # row:    0    1      2    3      4    5  ...  (cells cycle; "a|a" counts once)
    # cell:   a|b  b      c    a|a    b|c  ""
    cells = np.array(["a|b", "b", "c", "a|a", "b|c", ""] * 50)
    rng = np.random.default_rng(2)
    scores = rng.random(cells.size)
    labels = (rng.random(cells.size) < scores).astype(int)
    table = auc_by_slice(labels, scores, cells, top=2, min_rows=10, separator="|")
    assert table["value"].tolist() == ["b", "a", "(other)"]  # b: 150 rows, a: 100, c: 100
    members = [set(str(c).split("|")) for c in cells]
    for row in table.itertuples():
        if row.value == "(other)":
            mask = np.array([not m & {"a", "b"} for m in members])  # c alone, and ""
        else:
            mask = np.array([row.value in m for m in members])
        assert row.rows == mask.sum()
        assert row.share == pytest.approx(mask.mean())
        assert row.auc == pytest.approx(pairwise_auc(labels[mask], scores[mask]))
    whole = auc_by_slice(labels, scores, cells, top=10, min_rows=10)  # no separator: strings
    assert "a|b" in set(whole["value"]) and whole["rows"].sum() == cells.size
