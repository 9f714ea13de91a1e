"""Quality of a scored, labelled sample: calibration by bucket, score histogram, AUC by slice.

All functions take NumPy arrays (labels 0/1, predicted probabilities) and return tidy pandas
DataFrames, one row per bucket or slice, ready to tabulate or plot.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from unified_embedding.metrics.exact import roc_auc
from unified_embedding.metrics.exact import summary_metrics as summary_metrics  # re-exported

# A slice AUC resting on fewer rows of its rarer class than this is marked unreliable: with 30
# positives the AUC's standard error is still about 0.05.
MIN_CLASS_ROWS = 30
_MIN_SPAN = 1e-3  # the histogram's width when every score is the same


def calibration_table(
    labels: npt.ArrayLike, scores: npt.ArrayLike, buckets: int = 10
) -> pd.DataFrame:
    """Predicted vs observed CTR per bucket of equal row counts (score quantiles).

    Rows are sorted by score and cut into `buckets` contiguous groups of (almost) equal size;
    each row of the result is one group: `bucket`, `rows`, `min_score`, `max_score`,
    `mean_predicted` and `observed_ctr` (the fraction of positives). A calibrated model has
    mean_predicted ~= observed_ctr in every bucket.
    """
    if buckets < 1:
        raise ValueError(f"`buckets` should be >= 1. Received: `buckets={buckets}`")
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1 or y.size == 0:
        raise ValueError(
            f"`labels` and `scores` should be equal-length non-empty 1-D arrays. "
            f"Received shapes {y.shape} and {p.shape}"
        )
    order = np.argsort(p, kind="stable")
    groups = [g for g in np.array_split(order, min(buckets, y.size)) if g.size]
    return pd.DataFrame(
        {
            "bucket": np.arange(len(groups)),
            "rows": [g.size for g in groups],
            "min_score": [p[g].min() for g in groups],
            "max_score": [p[g].max() for g in groups],
            "mean_predicted": [p[g].mean() for g in groups],
            "observed_ctr": [y[g].mean() for g in groups],
        }
    )


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Row-weighted mean |mean_predicted - observed_ctr| over a `calibration_table`."""
    gap = (table["mean_predicted"] - table["observed_ctr"]).abs()
    return float((gap * table["rows"]).sum() / table["rows"].sum())


def score_histogram(
    labels: npt.ArrayLike, scores: npt.ArrayLike, bins: int = 20, zoom: bool = True
) -> pd.DataFrame:
    """Counts of scores per equal-width bin, split by label.

    With `zoom` the bins span the scores' observed range [min, max], so scores of a low-CTR
    model (all under 0.05, say) spread over every bin instead of filling the first bin of
    [0, 1]; without it they span [0, 1]. Columns: `left`, `right` (bin edges), `negatives`,
    `positives`. The last bin includes its right edge.
    """
    if bins < 1:
        raise ValueError(f"`bins` should be >= 1. Received: `bins={bins}`")
    y = np.asarray(labels)
    p = np.asarray(scores, dtype=np.float64)
    low, high = (float(p.min()), float(p.max())) if zoom and p.size else (0.0, 1.0)
    if high <= low:  # one score: a narrow bin around it
        low, high = low - _MIN_SPAN / 2, high + _MIN_SPAN / 2
    edges = np.linspace(low, high, bins + 1)
    negatives, _ = np.histogram(p[y == 0], edges)
    positives, _ = np.histogram(p[y == 1], edges)
    return pd.DataFrame(
        {"left": edges[:-1], "right": edges[1:], "negatives": negatives, "positives": positives}
    )


def auc_by_slice(
    labels: npt.ArrayLike,
    scores: npt.ArrayLike,
    values: npt.ArrayLike,
    top: int = 10,
    min_rows: int = 50,
    separator: str | None = None,
) -> pd.DataFrame:
    """AUC and CTRs for the `top` most frequent values of a field, plus the rest as `(other)`.

    With a `separator` (a multi-valued field) a cell holds several values and its row belongs
    to the slice of each (`a|b` is in slices `a` and `b`; values counted once per row), so
    slices overlap; `(other)` holds the rows with none of the top values. A slice needs
    `min_rows` rows and both classes to get an AUC (NaN otherwise: an AUC over a handful of
    rows or one class means nothing); `reliable` is False when its rarer class has fewer than
    `MIN_CLASS_ROWS` rows. Columns: `value`, `rows`, `share`, `positives`, `observed_ctr`,
    `mean_predicted`, `auc`, `reliable`; ordered by rows, `(other)` last.
    """
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    v = np.asarray(values).astype(str)
    if not y.shape == p.shape == v.shape:
        raise ValueError(
            f"`labels`, `scores` and `values` should have one shape. "
            f"Received {y.shape}, {p.shape}, {v.shape}"
        )
    if separator == "":
        raise ValueError("`separator` should be a non-empty string or None. Received: `''`")
    records = []
    for value, mask in slice_masks(v, top, separator):
        ys, ps = y[mask], p[mask]
        positives = int(ys.sum())
        defined = mask.sum() >= min_rows and 0 < positives < ys.size
        records.append(
            {
                "value": value,
                "rows": int(mask.sum()),
                "share": float(mask.mean()),
                "positives": positives,
                "observed_ctr": float(ys.mean()),
                "mean_predicted": float(ps.mean()),
                "auc": roc_auc(ys, ps) if defined else math.nan,
                "reliable": bool(min(positives, ys.size - positives) >= MIN_CLASS_ROWS),
            }
        )
    return pd.DataFrame.from_records(records)


def slice_masks(
    values: np.ndarray, top: int, separator: str | None = None
) -> list[tuple[str, np.ndarray]]:
    """(value, rows holding it) for the `top` most frequent values of string cells (each value
    of a cell split on `separator`, counted once per row), then `(other)`: the rows with none
    of them, when there are some."""
    # One (row, value) pair per distinct value of a cell: the rows of slice `x` are pairs[x].
    cells = pd.Series(values)
    pairs = (cells.str.split(separator, regex=False) if separator else cells).explode()
    pairs = pairs.reset_index().drop_duplicates().set_index(0)["index"]
    masks = []
    for value in pairs.index.value_counts(sort=True).index[:top]:
        mask = np.zeros(values.size, dtype=bool)
        mask[pairs.loc[[value]].to_numpy(dtype=np.int64)] = True
        masks.append((str(value), mask))
    rest = ~np.logical_or.reduce([m for _, m in masks]) if masks else np.ones(values.size, bool)
    if rest.any():
        masks.append(("(other)", rest))
    return masks
