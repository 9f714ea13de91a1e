"""A mergeable summary of (label, probability) pairs: the metrics `ue evaluate` and `ue score`
both report, computed per block of rows and merged in any grouping, never by collecting the
scores in one place.

    summary = ScoreSummary.of(labels, probabilities)    # one block (NaN label = unlabelled)
    summary.merge(other)                                 # any number of blocks, any order
    summary.metrics()                                    # None when no row carries a label

The summary counts rows per label in the logit bins of `metrics.histogram` (`BINS` equal-width
bins over [-LOGIT_RANGE, LOGIT_RANGE]: probabilities 1.1e-7 .. 1 - 1.1e-7; the end bins take the
rest) and sums each bin's probabilities. Its AUC is `histogram.histogram_auc`: a pair in one bin
counts 1/2, so the result differs from the exact AUC by at most
`auc_max_error = sum_b pos_b neg_b / (2 P N)`, reported beside it. A bin is 0.00049 wide in
logit (~8e-5 in probability at p = 0.2). The ECE's equal-mass groups (`exact.ECE_BINS`) are cut
at the bins' resolution: a bin that straddles a cut shares its rows, clicks and probabilities
pro rata. Log loss and calibration are float64 sums, exact up to rounding. A metric that is
undefined (AUC of one class, calibration without a click) is None, never NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from unified_embedding.metrics.exact import ECE_BINS, LOG_LOSS_EPS, calibration_warning
from unified_embedding.metrics.histogram import BINS, histogram_auc
from unified_embedding.metrics.histogram import logit_bins as bins_of_logits


def logit_bins(probability: npt.ArrayLike) -> np.ndarray:
    """int64 bin of each probability, in score order (bin 0 = lowest)."""
    p = np.asarray(probability, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logit = np.log(p) - np.log1p(-p)  # -inf at 0, inf at 1
    return bins_of_logits(logit)


def _zeros(dtype: type) -> np.ndarray:
    return np.zeros(0, dtype)


@dataclass
class ScoreSummary:
    """Sums over labelled rows. A block's histogram is sparse (`keys` = label * BINS + bin,
    with its rows `counts` and probability sums `sums`); merging makes it dense."""

    rows: int = 0
    positives: int = 0
    sum_probability: float = 0.0
    log_loss_sum: float = 0.0
    keys: np.ndarray = field(default_factory=lambda: _zeros(np.int64))
    counts: np.ndarray = field(default_factory=lambda: _zeros(np.int64))
    sums: np.ndarray = field(default_factory=lambda: _zeros(np.float64))
    dense: tuple[np.ndarray, np.ndarray] | None = None  # (2, BINS) rows and probability sums

    @classmethod
    def of(cls, labels: npt.ArrayLike, probabilities: npt.ArrayLike) -> ScoreSummary:
        """One block's summary; rows whose label is NaN are left out."""
        y = np.asarray(labels, dtype=np.float64)
        p = np.asarray(probabilities, dtype=np.float64)
        if y.shape != p.shape or y.ndim != 1:
            raise ValueError(
                f"`labels` and `probabilities` should be 1-D of one length. Received: "
                f"`labels.shape={y.shape}`, `probabilities.shape={p.shape}`"
            )
        labelled = ~np.isnan(y)
        y, p = y[labelled].astype(np.int64), p[labelled]
        clipped = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        losses = np.where(y == 1, np.log(clipped), np.log1p(-clipped))
        keys, inverse = np.unique(y * BINS + logit_bins(p), return_inverse=True)
        return cls(
            rows=len(y),
            positives=int(y.sum()),
            sum_probability=float(p.sum()),
            log_loss_sum=float(-losses.sum()),
            keys=keys.astype(np.int64),
            counts=np.bincount(inverse, minlength=len(keys)).astype(np.int64),
            sums=np.bincount(inverse, weights=p, minlength=len(keys)),
        )

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """(2, BINS) rows per (label, bin) and their probability sums."""
        if self.dense is not None:
            return self.dense
        counts, sums = np.zeros((2, BINS), np.int64), np.zeros((2, BINS), np.float64)
        counts.reshape(-1)[self.keys] = self.counts  # keys are unique
        sums.reshape(-1)[self.keys] = self.sums
        return counts, sums

    def merge(self, other: ScoreSummary) -> ScoreSummary:
        """Adds `other` into this summary (left alone) and returns it."""
        if self.dense is None:
            self.dense = self.histogram()
            self.keys, self.counts, self.sums = _zeros(np.int64), _zeros(np.int64), _zeros(float)
        counts, sums = self.dense
        if other.dense is not None:
            counts += other.dense[0]
            sums += other.dense[1]
        else:
            counts.reshape(-1)[other.keys] += other.counts
            sums.reshape(-1)[other.keys] += other.sums
        self.rows += other.rows
        self.positives += other.positives
        self.sum_probability += other.sum_probability
        self.log_loss_sum += other.log_loss_sum
        return self

    def metrics(self) -> dict[str, Any] | None:
        """AUC (and its bound), log loss, mean predicted and observed CTR, their ratio and the
        ECE over the labelled rows; None without any. Undefined metrics are None."""
        if not self.rows:
            return None
        counts, sums = self.histogram()
        auc, auc_error = histogram_auc(counts[1], counts[0])
        predicted = self.sum_probability / self.rows
        observed = self.positives / self.rows
        return {
            "rows": self.rows,
            "auc": auc,
            "auc_max_error": auc_error,
            "logloss": self.log_loss_sum / self.rows,
            "mean_predicted_ctr": predicted,
            "observed_ctr": observed,
            "calibration": predicted / observed if self.positives else None,
            "ece": histogram_ece(counts.sum(axis=0), counts[1], sums.sum(axis=0)),
        }


def histogram_ece(
    rows: npt.ArrayLike, positives: npt.ArrayLike, sums: npt.ArrayLike, bins: int = ECE_BINS
) -> float:
    """`exact.expected_calibration_error` from per-bin rows, clicks and probability sums in
    score order: the rows cut into `bins` groups of (almost) equal size, as `np.array_split`
    sizes them, a bin straddling a cut shared pro rata."""
    n = np.asarray(rows, dtype=np.float64)
    used = n > 0
    n = n[used]
    total = int(n.sum())
    if not total:
        return 0.0
    ranks = np.concatenate([[0.0], np.cumsum(n)])
    clicks = np.concatenate([[0.0], np.cumsum(np.asarray(positives, np.float64)[used])])
    predicted = np.concatenate([[0.0], np.cumsum(np.asarray(sums, np.float64)[used])])
    groups = min(bins, total)
    sizes = np.full(groups, total // groups)
    sizes[: total % groups] += 1
    cuts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.float64)
    gaps = np.diff(np.interp(cuts, ranks, predicted)) - np.diff(np.interp(cuts, ranks, clicks))
    return float(np.abs(gaps).sum() / total)


def metric_warnings(metrics: dict[str, Any] | None) -> list[str]:
    """One line per metric a person should not read as usual: AUC undefined (one class), or
    calibration undefined or outside [0.9, 1.1]."""
    if metrics is None:
        return []
    found = []
    if metrics["auc"] is None:
        rows, positives = metrics["rows"], round(metrics["observed_ctr"] * metrics["rows"])
        which = "clicks" if positives else "non-clicks"
        found.append(
            f"AUC is undefined: all {rows:,} labelled rows are {which} (one class), so `auc` "
            "is null; log loss and calibration are reported"
        )
    warning = calibration_warning(metrics["calibration"])
    if warning:
        found.append(warning)
    return found
