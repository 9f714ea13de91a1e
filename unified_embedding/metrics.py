"""Exact binary-classification metrics in NumPy, used to judge generated data and trained models."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def _binary_labels(
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
    y, s = _binary_labels(labels, scores, "scores")
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


def log_loss(labels: npt.ArrayLike, probabilities: npt.ArrayLike, eps: float = 1e-7) -> float:
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
    y, p = _binary_labels(labels, probabilities, "probabilities")
    if np.any((p < 0.0) | (p > 1.0)):
        raise ValueError("`probabilities` must lie in [0, 1].")
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(np.where(y == 1, np.log(p), np.log1p(-p))))


def summary_metrics(labels: npt.ArrayLike, scores: npt.ArrayLike) -> dict[str, float]:
    """AUC, log loss, mean predicted and observed CTR, and their ratio (1.0 = calibrated)."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    observed = float(y.mean())
    return {
        "rows": int(y.size),
        "auc": roc_auc(y, p),
        "logloss": log_loss(y, p),
        "mean_predicted_ctr": float(p.mean()),
        "observed_ctr": observed,
        "calibration": float(p.mean()) / observed if observed else math.nan,
    }
