"""Scoring statistics written to `stats.json`: a small summary per block, merged by one
CombineFn on any number of workers, never by collecting the scores in one place.

AUC comes from a histogram of scores per label over `BINS` equal-width bins of the logit in
[-LOGIT_RANGE, LOGIT_RANGE] (probabilities 1.1e-7 .. 1 - 1.1e-7; the end bins take the rest):

    AUC = sum_b pos_b (neg_<b + neg_b / 2) / (P N)

A (positive, negative) pair in different bins is ordered exactly; a pair in the same bin
counts 1/2 (a tie), so the result differs from the exact AUC by at most
`auc_max_error = sum_b pos_b neg_b / (2 P N)`, computed from the same histogram and reported
beside it. A bin is 0.00049 wide in logit (~8e-5 in probability at p = 0.2). Log loss and
calibration are float64 sums, exact up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np

from pipelines.accounting import FileRows, merge_files
from unified_embedding.rows.validation import REASONS

BINS = 1 << 16
LOGIT_RANGE = 16.0
LOG_LOSS_EPS = 1e-7  # as metrics.log_loss: a confident mistake costs a large, finite loss


def logit_bins(probability: np.ndarray) -> np.ndarray:
    """int64 bin of each probability, in score order (bin 0 = lowest)."""
    p = np.asarray(probability, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logit = np.log(p) - np.log1p(-p)  # -inf at 0, inf at 1
    scaled = (np.clip(logit, -LOGIT_RANGE, LOGIT_RANGE) + LOGIT_RANGE) * (BINS / (2 * LOGIT_RANGE))
    return np.minimum(scaled.astype(np.int64), BINS - 1)


@dataclass
class BlockScores:
    """What one block adds to the statistics. `keys`/`counts`: the labelled rows' sparse
    histogram, key = label * BINS + bin; `files`: rows per input file."""

    rows_read: int = 0
    rows_scored: int = 0
    dead: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    sum_probability: float = 0.0
    labelled: int = 0
    clicks: int = 0
    sum_labelled_probability: float = 0.0
    log_loss_sum: float = 0.0
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    files: dict[str, FileRows] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        rows_read: int,
        dead: dict[str, int],
        labels: np.ndarray,
        probability: np.ndarray,
        source: str | None = None,
    ) -> BlockScores:
        """A block's summary from its valid rows' labels (NaN = none) and probabilities;
        with its file (`source`), its rows are also counted for that file."""
        p = np.asarray(probability, dtype=np.float64)
        labelled = ~np.isnan(labels)
        y, q = labels[labelled].astype(np.int64), p[labelled]
        clipped = np.clip(q, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
        losses = np.where(y == 1, np.log(clipped), np.log1p(-clipped))
        keys, counts = np.unique(y * BINS + logit_bins(q), return_counts=True)
        return cls(
            rows_read=rows_read,
            rows_scored=len(p),
            dead=dict(dead),
            sum_probability=float(p.sum()),
            labelled=len(y),
            clicks=int(y.sum()),
            sum_labelled_probability=float(q.sum()),
            log_loss_sum=float(-losses.sum()),
            keys=keys.astype(np.int64),
            counts=counts.astype(np.int64),
            files={} if source is None else {
                source: FileRows(checked=rows_read, kept=len(p), dead=sum(dead.values()))
            },
        )  # fmt: skip


@dataclass
class ScoreStats:
    """The sum of any number of BlockScores, with a dense (2, BINS) histogram."""

    totals: BlockScores = field(default_factory=BlockScores)
    histogram: np.ndarray = field(default_factory=lambda: np.zeros((2, BINS), np.int64))

    def add(self, block: BlockScores) -> ScoreStats:
        t = self.totals
        t.rows_read += block.rows_read
        t.rows_scored += block.rows_scored
        for reason, count in block.dead.items():
            t.dead[reason] = t.dead.get(reason, 0) + count
        t.sum_probability += block.sum_probability
        t.labelled += block.labelled
        t.clicks += block.clicks
        t.sum_labelled_probability += block.sum_labelled_probability
        t.log_loss_sum += block.log_loss_sum
        self.histogram.reshape(-1)[block.keys] += block.counts  # keys are unique per block
        merge_files(t.files, block.files)
        return self

    def merge(self, other: ScoreStats) -> ScoreStats:
        self.add(other.totals)
        self.histogram += other.histogram
        return self

    def check_rows(self) -> None:
        """Raises unless every row read was scored or dead-lettered."""
        t = self.totals
        dead = sum(t.dead.values())
        if t.rows_scored + dead != t.rows_read:
            raise RuntimeError(
                f"rows lost: {t.rows_read} read but {t.rows_scored} scored + {dead} dead-lettered"
            )

    def metrics(self) -> dict[str, Any] | None:
        """AUC (and its bound), log loss and calibration over the labelled rows; None when
        no row carries a label. AUC is None when only one class is present."""
        t = self.totals
        if not t.labelled:
            return None
        observed = t.clicks / t.labelled
        predicted = t.sum_labelled_probability / t.labelled
        auc, auc_error = histogram_auc(self.histogram[1], self.histogram[0])
        return {
            "rows": t.labelled,
            "auc": auc,
            "auc_max_error": auc_error,
            "logloss": t.log_loss_sum / t.labelled,
            "mean_predicted_ctr": predicted,
            "observed_ctr": observed,
            "calibration": predicted / observed if observed else math.nan,
        }


def histogram_auc(
    positives: np.ndarray, negatives: np.ndarray
) -> tuple[float | None, float | None]:
    """(AUC, its largest possible error) from per-bin counts in score order; (None, None)
    when a class is absent."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if not n_pos or not n_neg:
        return None, None
    below = np.cumsum(neg) - neg  # negatives in lower bins
    same = float(np.dot(pos, neg))
    auc = (float(np.dot(pos, below)) + same / 2.0) / (n_pos * n_neg)
    return auc, same / (2.0 * n_pos * n_neg)


class MergeScoreStatsFn(beam.CombineFn):
    """BlockScores -> one ScoreStats (runners add blocks on each worker, then merge)."""

    def create_accumulator(self) -> ScoreStats:
        return ScoreStats()

    def add_input(self, acc: ScoreStats, block: BlockScores) -> ScoreStats:
        return acc.add(block)

    def merge_accumulators(self, accumulators: Iterable[ScoreStats]) -> ScoreStats:
        total = ScoreStats()
        for acc in accumulators:
            total.merge(acc)
        return total

    def extract_output(self, acc: ScoreStats) -> ScoreStats:
        return acc
