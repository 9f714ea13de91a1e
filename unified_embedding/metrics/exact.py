"""Exact binary-classification metrics in NumPy, used to judge generated data and trained models."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

ECE_BINS = 10  # equal-mass bins of `expected_calibration_error`
LOG_LOSS_EPS = 1e-7  # `log_loss` clips probabilities to [eps, 1 - eps]


def binary_labels(
    labels: npt.ArrayLike, other: npt.ArrayLike, other_name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Validates a (labels, values) pair and returns them as 1-D int64 / float64 arrays."""
    y = np.asarray(labels)
    x = np.asarray(other, dtype=np.float64)
    if y.shape != x.shape:
        raise ValueError(
            f"`labels` and `{other_name}` must have the same shape. "
            f"Received: `labels.shape={y.shape}`, `{other_name}.shape={x.shape}`"
        )
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"`labels` must be a non-empty 1-D array. Received: `shape={y.shape}`")
    y = y.astype(np.int64)
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(
            f"`labels` must contain only 0 and 1. Received values: {np.unique(y)[:10].tolist()}"
        )
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{other_name}` must be finite; it contains NaN or infinity.")
    return y, x


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve, exact, via the Mann-Whitney U statistic.

    AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg), where R_pos is the sum of the
    1-based ranks of the positive scores and tied scores share their average rank, so a tied
    (positive, negative) pair counts 1/2. O(n log n).

    Args:
      labels: (n,) array of 0/1.
      scores: (n,) array of real scores; only their order matters.

    Returns:
      The AUC in [0, 1].

    Raises:
      ValueError: if shapes differ, labels are not 0/1, scores are not finite, or only one
        class is present (the AUC is undefined then).
    """
    y, s = binary_labels(labels, scores, "scores")
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            "`roc_auc` needs both classes in `labels`. "
            f"Received: {n_pos} positives and {n_neg} negatives."
        )
    order = np.argsort(s, kind="stable")
    sorted_scores = s[order]
    # A tie group spans sorted positions [start, end); all its members get rank (start+end+1)/2.
    is_start = np.empty(s.size, dtype=bool)
    is_start[0] = True
    np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    ends = np.append(starts[1:], s.size)
    group_rank = (starts + ends + 1) / 2.0
    ranks = group_rank[np.cumsum(is_start) - 1]  # (n,) rank of each sorted position
    rank_sum_pos = float(ranks[y[order] == 1].sum())
    u_statistic = rank_sum_pos - n_pos * (n_pos + 1) / 2.0
    return u_statistic / (n_pos * n_neg)


def log_loss(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, eps: float = LOG_LOSS_EPS
) -> float:
    """Mean binary cross-entropy, -mean(y log p + (1 - y) log(1 - p)).

    Args:
      labels: (n,) array of 0/1.
      probabilities: (n,) predicted P(label = 1); clipped to [eps, 1 - eps] so a confident
        mistake costs a large but finite loss.
      eps: clipping margin in (0, 0.5).

    Returns:
      The mean loss in nats.
    """
    if not 0.0 < eps < 0.5:
        raise ValueError(f"`eps` should be in (0, 0.5). Received: `eps={eps}`")
    y, p = binary_labels(labels, probabilities, "probabilities")
    if np.any((p < 0.0) | (p > 1.0)):
        raise ValueError("`probabilities` must lie in [0, 1].")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


def calibration(labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> float:
    """Mean predicted / observed CTR: 1.0 when the predictions are right on average.

    NaN when `labels` hold no positive (the ratio is undefined then).
    """
    y, p = binary_labels(labels, probabilities, "probabilities")
    positives = int(y.sum())
    return float(p.sum()) / positives if positives else math.nan


def expected_calibration_error(
    labels: npt.ArrayLike, probabilities: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """Expected calibration error over `bins` equal-mass bins.

    ECE = sum_b (n_b / n) |mean(p in b) - mean(y in b)|. Rows are sorted by probability and cut
    into `bins` contiguous groups of (almost) equal size (as `evaluation.quality`'s calibration
    table does): equal-width bins would put nearly every row of a low-CTR dataset in the first
    bin, and the ECE would only repeat the calibration ratio.

    Args:
      labels: (n,) array of 0/1.
      probabilities: (n,) predicted P(label = 1).
      bins: number of bins; fewer when there are fewer rows.

    Returns:
      The ECE in [0, 1]; 0 when every bin's mean prediction equals its observed CTR.
    """
    if bins < 1:
        raise ValueError(f"`bins` should be >= 1. Received: `bins={bins}`")
    y, p = binary_labels(labels, probabilities, "probabilities")
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, y.size))
    gaps = [abs(float(p[g].sum()) - float(y[g].sum())) for g in groups]
    return sum(gaps) / y.size


def summary_metrics(labels: npt.ArrayLike, scores: npt.ArrayLike) -> dict[str, Any]:
    """AUC, log loss, mean predicted and observed CTR, their ratio (1.0 = calibrated) and ECE,
    exact. An undefined metric is None (never NaN, which JSON cannot hold): the AUC when
    `labels` hold one class, the calibration when they hold no positive."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    ratio = calibration(y, p)
    return {
        "rows": int(y.size),
        "auc": roc_auc(y, p) if 0 < positives < y.size else None,
        "logloss": log_loss(y, p),
        "mean_predicted_ctr": float(p.mean()),
        "observed_ctr": float(y.mean()),
        "calibration": None if math.isnan(ratio) else ratio,
        "ece": expected_calibration_error(y, p),
    }


def calibration_warning(
    calibration: float | None, low: float = 0.9, high: float = 1.1
) -> str | None:
    """A one-line warning when mean predicted / observed CTR lies outside [low, high], or is
    undefined (None or NaN: no positive label)."""
    if calibration is None or math.isnan(calibration):
        return "calibration (mean predicted / observed CTR) is undefined: no positive label"
    if low <= calibration <= high:
        return None
    return (
        f"calibration (mean predicted / observed CTR) is {calibration:.3f}, outside "
        f"[{low}, {high}]: the scores are {'too high' if calibration > high else 'too low'} "
        "on average; check the label rate of the training data against this data's"
    )
