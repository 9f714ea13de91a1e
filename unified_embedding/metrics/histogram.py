"""The logit histogram both histogram AUCs share: `summary.ScoreSummary` (`ue evaluate`,
`ue score`) and `streaming.HistogramAUC` (the validation AUC of `ue train`).

Rows are counted per label in `BINS` equal-width bins of the logit over [-LOGIT_RANGE,
LOGIT_RANGE] (the end bins take the rest). A (positive, negative) pair in different bins is
ordered exactly; a pair in one bin counts 1/2 (a tie), so

    AUC   = sum_b pos_b (neg_<b + neg_b / 2) / (P N)
    bound = sum_b pos_b neg_b / (2 P N)            (|AUC - exact AUC| <= bound)

A bin is 0.00049 wide in logit: scores spread over a few tenths of a logit or more give a bound
far below 1e-3. Scores bunched closer (a model that has barely learned) need finer bins where
they lie: `refinement_window` picks the bins to split again and `refined_auc` puts the two
passes together.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BINS = 1 << 16
LOGIT_RANGE = 16.0
AUC_MAX_BOUND = 1e-3  # the largest bound `ue train`'s validation AUC may carry


def logit_bins(logit: npt.ArrayLike) -> np.ndarray:
    """int64 bin of each logit, in score order (bin 0 = lowest)."""
    x = np.asarray(logit, dtype=np.float64)
    scaled = (np.clip(x, -LOGIT_RANGE, LOGIT_RANGE) + LOGIT_RANGE) * (BINS / (2 * LOGIT_RANGE))
    return np.minimum(scaled.astype(np.int64), BINS - 1)


def pair_sums(positives: npt.ArrayLike, negatives: npt.ArrayLike) -> tuple[float, float]:
    """(pairs ordered right + ties / 2, tied pairs) over per-bin counts in score order."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    below = np.cumsum(neg) - neg  # negatives in lower bins
    same = float(np.dot(pos, neg))
    return float(np.dot(pos, below)) + same / 2.0, same


def histogram_auc(
    positives: npt.ArrayLike, negatives: npt.ArrayLike
) -> tuple[float | None, float | None]:
    """(AUC, its largest possible error) from per-bin counts in score order; (None, None)
    when a class is absent."""
    n_pos = float(np.sum(positives, dtype=np.float64))
    n_neg = float(np.sum(negatives, dtype=np.float64))
    if not n_pos or not n_neg:
        return None, None
    ordered, tied = pair_sums(positives, negatives)
    return ordered / (n_pos * n_neg), tied / (2.0 * n_pos * n_neg)


def refinement_window(
    positives: npt.ArrayLike, negatives: npt.ArrayLike, bound: float = AUC_MAX_BOUND
) -> tuple[int, int] | None:
    """The narrowest run of bins (first, last) outside which the tied pairs weigh at most half
    of `bound`: counting those bins again, `BINS` times finer, leaves the rest of the bound to
    them. None when the histogram's bound is already within `bound` (or a class is absent)."""
    pos = np.asarray(positives, dtype=np.float64)
    neg = np.asarray(negatives, dtype=np.float64)
    total = float(pos.sum()) * float(neg.sum())
    ties = pos * neg
    if not total or ties.sum() <= 2.0 * bound * total:
        return None
    tied = np.flatnonzero(ties)
    mass = np.concatenate([[0.0], np.cumsum(ties[tied])])
    # The window tied[i]..tied[j] must hold at least `need`; for each start i, the least j.
    need = mass[-1] - bound * total
    ends = np.searchsorted(mass, mass[:-1] + need, side="left") - 1
    valid = ends < len(tied)
    starts = np.flatnonzero(valid)
    ends = np.maximum(ends[valid], starts)
    best = int(np.argmin(tied[ends] - tied[starts]))
    return int(tied[starts[best]]), int(tied[ends[best]])


def refined_auc(
    coarse: tuple[npt.ArrayLike, npt.ArrayLike],
    window: tuple[int, int],
    fine: tuple[npt.ArrayLike, npt.ArrayLike],
) -> tuple[float | None, float | None]:
    """(AUC, bound) from a coarse (positives, negatives) histogram over every row and a fine
    one over the rows of the coarse bins `window` (first, last), the fine bins splitting that
    window: pairs with a row outside the window are ordered by the coarse bins, pairs inside
    it by the fine ones."""
    pos, neg = (np.asarray(x, dtype=np.float64) for x in coarse)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if not n_pos or not n_neg:
        return None, None
    first, last = window
    ordered, tied = pair_sums(pos, neg)
    inside_ordered, inside_tied = pair_sums(pos[first : last + 1], neg[first : last + 1])
    fine_ordered, fine_tied = pair_sums(*fine)
    pairs = n_pos * n_neg
    auc = (ordered - inside_ordered + fine_ordered) / pairs
    return auc, (tied - inside_tied + fine_tied) / (2.0 * pairs)
