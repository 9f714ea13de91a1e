"""Metrics against independent oracles: pairwise AUC counting, per-example log loss, hand-computed
calibration and ECE; the streaming Keras metrics against the NumPy ones."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tf_keras as keras

from unified_embedding.evaluation import quality
from unified_embedding.metrics.exact import (
    calibration,
    calibration_warning,
    expected_calibration_error,
    log_loss,
    roc_auc,
    summary_metrics,
)
from unified_embedding.metrics.streaming import Calibration, ExpectedCalibrationError


def _pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """O(n^2) oracle: P(score of a positive > score of a negative), ties counting 1/2."""
    positives = scores[labels == 1]
    negatives = scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return float(wins) / (len(positives) * len(negatives))


def test_roc_auc_hand_checked() -> None:
    # Pairs (pos, neg): (0.35, 0.1) win, (0.35, 0.4) loss, (0.8, *) two wins -> 3/4.
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    # Positive 0.5 ties negative 0.5 (1/2) and beats 0.2; positive 0.9 beats both -> 3.5/4.
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])) == 0.875


@pytest.mark.parametrize("seed", range(8))
def test_roc_auc_matches_pairwise_oracle_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]  # both classes present
    scores = rng.integers(0, 6, n).astype(np.float64)  # few distinct values: many ties
    assert roc_auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)


def test_roc_auc_uses_order_only_and_flips_when_reversed() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = rng.normal(size=500) + labels
    auc = roc_auc(labels, scores)
    assert roc_auc(labels, np.exp(3 * scores)) == pytest.approx(auc, abs=1e-12)
    assert roc_auc(labels, -scores) == pytest.approx(1 - auc, abs=1e-12)
    assert roc_auc(labels, np.zeros(500)) == 0.5  # all tied


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
        ([0, 1], [0.1, 0.2, 0.3], "same shape"),
        ([0, 2], [0.1, 0.2], "only 0 and 1"),
        ([0, 1], [0.1, float("nan")], "finite"),
        ([], [], "non-empty"),
    ],
)
def test_roc_auc_rejects_bad_input(labels: list[int], scores: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        roc_auc(np.array(labels), np.array(scores))


def test_log_loss_hand_checked() -> None:
    # Each example is predicted 0.8 for its true class: the loss is -log(0.8) for both.
    assert log_loss(np.array([1, 0]), np.array([0.8, 0.2])) == pytest.approx(-math.log(0.8))


def test_log_loss_matches_per_example_oracle() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    probabilities = rng.uniform(0.01, 0.99, 200)
    expected = -sum(
        math.log(p) if y == 1 else math.log(1 - p)
        for y, p in zip(labels, probabilities, strict=True)
    ) / len(labels)
    assert log_loss(labels, probabilities) == pytest.approx(expected, rel=1e-12)


def test_log_loss_clips_confident_mistakes_to_eps() -> None:
    assert log_loss(np.array([1]), np.array([0.0]), eps=1e-3) == pytest.approx(-math.log(1e-3))
    assert log_loss(np.array([0]), np.array([1.0]), eps=1e-3) == pytest.approx(-math.log(1e-3))


def test_log_loss_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="`eps`"):
        log_loss(np.array([1]), np.array([0.5]), eps=0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        log_loss(np.array([1]), np.array([1.5]))
    with pytest.raises(ValueError, match="same shape"):
        log_loss(np.array([1, 0]), np.array([0.5]))


def test_calibration_hand_checked() -> None:
    # Predictions sum to 2.7 over 3 positives: 0.9.
    labels, probabilities = [0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.4, 0.8, 0.9]
    assert calibration(labels, probabilities) == pytest.approx(0.9)
    assert math.isnan(calibration([0, 0], [0.1, 0.2]))  # no positive: undefined


def test_ece_hand_checked_equal_mass_bins() -> None:
    # 3 bins of 2 sorted rows: (0.1, 0.2 | 0, 0) gap 0.3, (0.3, 0.4 | 1, 0) gap |0.7 - 1| = 0.3,
    # (0.8, 0.9 | 1, 1) gap |1.7 - 2| = 0.3 -> 0.9 / 6 rows.
    labels, probabilities = [1, 0, 0, 1, 0, 1], [0.9, 0.1, 0.4, 0.3, 0.2, 0.8]
    assert expected_calibration_error(labels, probabilities, bins=3) == pytest.approx(0.15)
    # One bin: |2.7 - 3| / 6, the calibration-in-the-large gap.
    assert expected_calibration_error(labels, probabilities, bins=1) == pytest.approx(0.05)
    # More bins than rows: one row per bin, sum |p - y| / n.
    expected = sum(abs(p - y) for y, p in zip(labels, probabilities, strict=True)) / 6
    assert expected_calibration_error(labels, probabilities, bins=50) == pytest.approx(expected)


def test_ece_matches_the_quality_notebooks_calibration_table() -> None:
    rng = np.random.default_rng(3)
    probabilities = rng.uniform(0.0, 0.2, 1001)
    labels = (rng.uniform(size=1001) < probabilities * 1.5).astype(int)
    table = quality.calibration_table(labels, probabilities, buckets=10)
    assert expected_calibration_error(labels, probabilities) == pytest.approx(
        quality.expected_calibration_error(table), abs=1e-12
    )


def test_summary_metrics_report_calibration_and_ece() -> None:
    summary = summary_metrics([1, 0, 0, 1, 0, 1], [0.9, 0.1, 0.4, 0.3, 0.2, 0.8])
    assert summary["calibration"] == pytest.approx(0.9)
    assert summary["ece"] == pytest.approx(
        expected_calibration_error([1, 0, 0, 1, 0, 1], [0.9, 0.1, 0.4, 0.3, 0.2, 0.8])
    )


def test_summary_metrics_of_one_class_are_null_not_nan() -> None:
    summary = summary_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert summary["auc"] is None and summary["calibration"] is None
    assert summary["logloss"] == pytest.approx(log_loss([0, 0, 0], [0.1, 0.2, 0.3]))
    json.dumps(summary, allow_nan=False)


@pytest.mark.parametrize(
    ("labels", "probabilities", "message"),
    [([0, 1], [0.1], "same shape"), ([0, 3], [0.1, 0.2], "only 0 and 1")],
)
def test_calibration_metrics_reject_bad_input(
    labels: list[int], probabilities: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        calibration(labels, probabilities)
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(labels, probabilities)
    with pytest.raises(ValueError, match=r"`bins` should be >= 1. Received: `bins=0`"):
        expected_calibration_error([0, 1], [0.1, 0.2], bins=0)


def test_calibration_warning_outside_the_band_only() -> None:
    assert calibration_warning(1.0) is None and calibration_warning(0.9) is None
    warning = calibration_warning(13.8)
    assert warning is not None and "13.800" in warning and "too high" in warning
    assert "too low" in str(calibration_warning(0.5))
    assert "undefined" in str(calibration_warning(math.nan))
    assert "undefined" in str(calibration_warning(None))


def _streamed(metric: keras.metrics.Metric, labels: np.ndarray, logits: np.ndarray) -> float:
    for start in range(0, labels.size, 300):  # several batches: the state must accumulate
        metric.update_state(labels[start : start + 300, None], logits[start : start + 300, None])
    return float(metric.result())


@pytest.mark.parametrize("rate", [0.02, 0.3])
def test_keras_calibration_metrics_match_numpy(rate: float) -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(math.log(rate / (1 - rate)), 1.0, 5000)
    probabilities = 1 / (1 + np.exp(-logits))
    labels = (rng.uniform(size=5000) < probabilities * 0.8).astype(np.float32)
    assert _streamed(Calibration(), labels, logits) == pytest.approx(
        calibration(labels, probabilities), rel=1e-5
    )
    # Equal-mass groups cut from fine logit bins: which side of a group boundary the rows of
    # one fine bin fall on moves the exact ECE by a few rows' worth (3% here).
    assert _streamed(ExpectedCalibrationError(), labels, logits) == pytest.approx(
        expected_calibration_error(labels, probabilities), rel=0.05
    )


def test_keras_ece_is_exact_when_each_fine_bin_holds_at_most_one_row() -> None:
    rng = np.random.default_rng(5)
    logits = rng.permutation(np.linspace(-7.0, 7.0, 1000))  # 0.014 apart; fine bins 0.0078
    labels = (rng.uniform(size=1000) < 0.3).astype(np.float32)
    probabilities = 1 / (1 + np.exp(-logits))
    assert _streamed(ExpectedCalibrationError(), labels, logits) == pytest.approx(
        expected_calibration_error(labels, probabilities), abs=1e-6
    )


def test_keras_calibration_metrics_reset_and_round_trip_their_config() -> None:
    metric = ExpectedCalibrationError(bins=15, resolution=512, limit=8.0)
    assert _streamed(metric, np.array([1.0, 0.0]), np.array([3.0, -3.0])) > 0
    metric.reset_state()
    assert float(metric.result()) == 0.0
    clone = ExpectedCalibrationError.from_config(metric.get_config())
    assert (clone.bins, clone.resolution, clone.limit) == (15, 512, 8.0)
    assert math.isnan(float(Calibration().result()))  # no positive seen yet
    with pytest.raises(ValueError, match=r"`bins` should be >= 1. Received: `bins=0`"):
        ExpectedCalibrationError(bins=0)


def test_ue_evaluate_prints_json_and_a_warning_line_outside_the_band(capsys) -> None:  # type: ignore[no-untyped-def]
    from unified_embedding.evaluation.evaluate import print_report

    for value, warned in ((13.8, True), (1.02, False)):
        report = {
            "rows": 10,
            "auc": 0.7,
            "logloss": 0.3,
            "observed_ctr": 0.2,
            "calibration": value,
            "ece": 0.1,
        }
        print_report(report)
        out, err = capsys.readouterr()
        assert json.loads(out) == report
        assert ("ue evaluate: warning: calibration" in err and "13.800" in err) == warned
    with pytest.raises(ValueError):  # JSON holds no NaN: a NaN metric is a bug, not output
        print_report({**report, "ece": math.nan})
