"""Metrics against independent oracles: pairwise AUC counting and per-example log loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unified_embedding.metrics import log_loss, roc_auc


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
