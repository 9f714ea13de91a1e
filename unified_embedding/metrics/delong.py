"""DeLong's test for two correlated ROC curves: the AUCs of two models scored on the same rows,
their difference and its confidence interval.

    comparison = compare_aucs(labels, candidate_scores, baseline_scores)
    comparison.difference, comparison.lower, comparison.upper, comparison.p_value

The AUC is the Mann-Whitney statistic (`exact.roc_auc`, ties count 1/2). DeLong, DeLong and
Clarke-Pearson (Biometrics 1988) write it as the mean of structural components: for positive
`i`, V10_i is the share of negatives it outscores; for negative `j`, V01_j is the share of
positives that outscore it. With K models on the same rows,

    S = cov(V10) / m + cov(V01) / n          (K x K; m positives, n negatives)
    var(AUC_a - AUC_b) = S_aa + S_bb - 2 S_ab

and (AUC_a - AUC_b) / sqrt(var) is asymptotically standard normal. The components come from
midranks, as Sun and Xu (IEEE Signal Processing Letters 2014) compute them in O(n log n):
V10_i = (rank of i among all rows - rank of i among positives) / n, and V01_j = 1 - (rank of
j among all rows - rank of j among negatives) / m, midranks for ties.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from unified_embedding.metrics.exact import binary_labels

MIN_ROWS_PER_CLASS = 2  # a covariance of the structural components needs two of each class


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of `values`, tied values sharing their average rank, float64 (n,)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    is_start = np.empty(values.size, dtype=bool)
    is_start[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=is_start[1:])
    starts = np.flatnonzero(is_start)
    ends = np.append(starts[1:], values.size)
    group_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = group_rank[np.cumsum(is_start) - 1]
    return ranks


def auc_covariance(labels: npt.ArrayLike, *scores: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The AUC of each score column and DeLong's covariance of those AUCs.

    Args:
      labels: (n,) 0/1.
      *scores: K arrays (n,) of real scores of the same rows; only their order matters.

    Returns:
      `aucs` (K,) and `covariance` (K, K), float64.

    Raises:
      ValueError: for bad shapes or values (as `exact.roc_auc`), or fewer than
        `MIN_ROWS_PER_CLASS` positives or negatives.
    """
    if not scores:
        raise ValueError("`auc_covariance` needs at least one score column. Received: none")
    columns = [binary_labels(labels, s, "scores") for s in scores]
    y = columns[0][0]
    positive = y == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if min(m, n) < MIN_ROWS_PER_CLASS:
        raise ValueError(
            f"DeLong's test needs at least {MIN_ROWS_PER_CLASS} positive and "
            f"{MIN_ROWS_PER_CLASS} negative labels. Received: {m} positives and {n} negatives"
        )
    aucs, v10, v01 = [], [], []
    for _, s in columns:
        x, z = s[positive], s[~positive]  # (m,) and (n,)
        combined = midranks(np.concatenate([x, z]))
        aucs.append((combined[:m].sum() - m * (m + 1) / 2.0) / (m * n))
        v10.append((combined[:m] - midranks(x)) / n)
        v01.append(1.0 - (combined[m:] - midranks(z)) / m)
    covariance = np.atleast_2d(np.cov(np.array(v10)) / m + np.cov(np.array(v01)) / n)
    return np.array(aucs), covariance


@dataclass(frozen=True)
class AucComparison:
    """DeLong's paired comparison of a model's AUC with a baseline's on the same rows.

    `difference` = `auc` - `baseline_auc`; [`lower`, `upper`] is its two-sided `confidence`
    interval; `p_value` is two-sided, for equal AUCs. Two models that rank every pair alike
    have `std_error` 0: the interval is the difference itself.
    """

    auc: float
    baseline_auc: float
    difference: float
    std_error: float
    confidence: float
    lower: float
    upper: float
    p_value: float
    positives: int
    negatives: int

    def to_dict(self) -> dict[str, Any]:
        return {"method": "delong", **asdict(self)}


def compare_aucs(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    baseline_scores: npt.ArrayLike,
    confidence: float = 0.95,
) -> AucComparison:
    """DeLong's test of `scores` against `baseline_scores` of the same rows (`AucComparison`)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` should be in (0, 1). Received: `confidence={confidence}`")
    aucs, cov = auc_covariance(labels, scores, baseline_scores)
    difference = float(aucs[0] - aucs[1])
    variance = max(float(cov[0, 0] + cov[1, 1] - 2.0 * cov[0, 1]), 0.0)  # rounding: never < 0
    std_error = variance**0.5
    half_width = NormalDist().inv_cdf(0.5 + confidence / 2.0) * std_error
    if std_error > 0.0:
        p_value = 2.0 * NormalDist().cdf(-abs(difference) / std_error)
    else:
        p_value = 1.0 if difference == 0.0 else 0.0
    positives = int(np.sum(np.asarray(labels) == 1))
    return AucComparison(
        auc=float(aucs[0]),
        baseline_auc=float(aucs[1]),
        difference=difference,
        std_error=std_error,
        confidence=confidence,
        lower=difference - half_width,
        upper=difference + half_width,
        p_value=p_value,
        positives=positives,
        negatives=int(np.asarray(labels).size) - positives,
    )
