"""The mergeable metrics summary: AUC within its reported bound of the exact one, log loss,
calibration and ECE as the exact NumPy metrics give them, merging in any grouping equals one
pass, and undefined metrics as None (one class, no click, no label)."""

import json

import numpy as np
import pytest

from unified_embedding.metrics.exact import summary_metrics
from unified_embedding.metrics.summary import (
    BINS,
    ScoreSummary,
    histogram_ece,
    logit_bins,
    metric_warnings,
)


def blocks(seed: int, count: int = 6) -> list[tuple[np.ndarray, np.ndarray]]:
    """(labels with NaN = unlabelled, probabilities) per block; scores carry signal."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.integers(1, 3000))
        y = (rng.random(n) < 0.25).astype(np.float32)
        p = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.5 * y - 1.2)))
        y[rng.random(n) < 0.1] = np.nan
        out.append((y, p.astype(np.float32)))
    return out


def merged(parts: list[tuple[np.ndarray, np.ndarray]]) -> ScoreSummary:
    total = ScoreSummary()
    for y, p in parts:
        total.merge(ScoreSummary.of(y, p))
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_metric_agrees_with_the_exact_one(seed: int) -> None:
    parts = blocks(seed)
    y = np.concatenate([y for y, _ in parts])
    p = np.concatenate([p for _, p in parts])
    known = ~np.isnan(y)
    metrics = merged(parts).metrics()
    exact = summary_metrics(y[known], p[known])
    assert metrics is not None and metrics["rows"] == exact["rows"] == int(known.sum())
    assert abs(metrics["auc"] - exact["auc"]) <= metrics["auc_max_error"] < 1e-3
    for name in ("logloss", "mean_predicted_ctr", "observed_ctr", "calibration"):
        assert metrics[name] == pytest.approx(exact[name], rel=1e-9), name
    assert metrics["ece"] == pytest.approx(exact["ece"], abs=1e-4)
    assert set(metrics) == set(exact) | {"auc_max_error"}  # `ue score` = `ue evaluate`


def test_ties_count_half_and_the_bound_is_exact_for_one_bin() -> None:
    # 2 positives and 2 negatives, all the same score: AUC 1/2, and it could be 0..1
    y = np.array([1, 1, 0, 0], np.float32)
    metrics = ScoreSummary.of(y, np.full(4, 0.3, np.float32)).metrics()
    assert metrics is not None
    assert metrics["auc"] == 0.5 and metrics["auc_max_error"] == 0.5
    # separated scores: exact, no error
    metrics = ScoreSummary.of(y, np.array([0.9, 0.8, 0.1, 0.2], np.float32)).metrics()
    assert metrics is not None and metrics["auc"] == 1.0 and metrics["auc_max_error"] == 0.0


def test_ece_of_equal_mass_groups_hand_checked() -> None:
    # 6 rows in 6 distinct bins, 3 groups of 2: (0.1, 0.2 | 0, 0) gap 0.3, (0.3, 0.4 | 1, 0)
    # gap 0.3, (0.8, 0.9 | 1, 1) gap 0.3 -> 0.9 / 6
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.8, 0.9])
    y = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    assert histogram_ece(np.ones(6), y, p, bins=3) == pytest.approx(0.15)
    # one bin of 4 rows (2 clicks, p sum 2.0) cut in two groups: each takes half of everything
    assert histogram_ece([4], [2], [2.0], bins=2) == pytest.approx(0.0)
    assert histogram_ece([4], [4], [2.0], bins=2) == pytest.approx(0.5)


def test_merging_in_any_grouping_equals_one_pass() -> None:
    parts = [ScoreSummary.of(y, p) for y, p in blocks(3, count=8)]
    one = ScoreSummary()
    for block in parts:
        one.merge(block)
    left, right = ScoreSummary(), ScoreSummary()
    for i, block in enumerate(reversed(parts)):
        (left if i % 3 else right).merge(block)
    total = right.merge(left)
    np.testing.assert_array_equal(total.histogram()[0], one.histogram()[0])
    assert total.metrics() == pytest.approx(one.metrics())
    assert parts[0].dense is None  # the blocks are left alone


def test_bins_are_monotonic_and_cover_zero_and_one() -> None:
    bins = logit_bins(np.array([0.0, 1e-9, 0.1, 0.5, 0.9, 1 - 1e-9, 1.0]))
    assert bins[0] == 0 and bins[-1] == BINS - 1 and np.all(np.diff(bins) >= 0)
    assert bins[3] == BINS // 2


def test_one_class_and_no_label_give_null_metrics_and_a_warning() -> None:
    p = np.array([0.1, 0.3, 0.2], np.float32)
    negatives = ScoreSummary.of(np.zeros(3, np.float32), p).metrics()
    assert negatives is not None
    assert negatives["auc"] is None and negatives["auc_max_error"] is None
    assert negatives["calibration"] is None  # no click: mean predicted / 0
    assert negatives["logloss"] == pytest.approx(-np.log1p(-p.astype(np.float64)).mean())
    assert negatives["ece"] == pytest.approx(float(p.astype(np.float64).mean()))
    json.dumps(negatives, allow_nan=False)  # null, never NaN
    warnings = metric_warnings(negatives)
    assert len(warnings) == 2 and "all 3 labelled rows are non-clicks" in warnings[0]
    assert "undefined: no positive label" in warnings[1]
    clicks = ScoreSummary.of(np.ones(3, np.float32), p).metrics()
    assert clicks is not None and clicks["auc"] is None
    assert clicks["calibration"] == pytest.approx(0.2)
    assert "are clicks" in metric_warnings(clicks)[0]
    assert ScoreSummary.of(np.full(3, np.nan, np.float32), p).metrics() is None
    assert metric_warnings(None) == []
