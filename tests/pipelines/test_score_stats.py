"""The scoring statistics: histogram AUC against the exact one (within its reported bound),
merging in any grouping equals one pass, and the rows-in = rows-out check."""

import numpy as np
import pytest

from pipelines.score_stats import BINS, BlockScores, MergeScoreStatsFn, ScoreStats, logit_bins
from unified_embedding.metrics.exact import log_loss, roc_auc


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


def summaries(parts: list[tuple[np.ndarray, np.ndarray]]) -> list[BlockScores]:
    return [BlockScores.of(len(y) + 1, {"bad_label": 1}, y, p) for y, p in parts]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histogram_auc_is_within_its_bound_of_the_exact_auc(seed: int) -> None:
    parts = blocks(seed)
    total = ScoreStats()
    for block in summaries(parts):
        total.add(block)
    y = np.concatenate([y for y, _ in parts])
    p = np.concatenate([p for _, p in parts])
    known = ~np.isnan(y)
    metrics = total.metrics()
    assert metrics is not None and metrics["rows"] == int(known.sum())
    exact = roc_auc(y[known], p[known])
    assert abs(metrics["auc"] - exact) <= metrics["auc_max_error"] < 1e-3
    assert metrics["logloss"] == pytest.approx(log_loss(y[known], p[known]), rel=1e-9)
    assert metrics["observed_ctr"] == pytest.approx(y[known].mean())
    assert metrics["mean_predicted_ctr"] == pytest.approx(p[known].astype(np.float64).mean())


def test_ties_count_half_and_the_bound_is_exact_for_one_bin() -> None:
    # 2 positives and 2 negatives, all the same score: AUC 1/2, and it could be 0..1
    y = np.array([1, 1, 0, 0], np.float32)
    p = np.full(4, 0.3, np.float32)
    metrics = ScoreStats().add(BlockScores.of(4, {}, y, p)).metrics()
    assert metrics is not None
    assert metrics["auc"] == 0.5 and metrics["auc_max_error"] == 0.5
    # separated scores: exact, no error
    p = np.array([0.9, 0.8, 0.1, 0.2], np.float32)
    metrics = ScoreStats().add(BlockScores.of(4, {}, y, p)).metrics()
    assert metrics is not None and metrics["auc"] == 1.0 and metrics["auc_max_error"] == 0.0


def test_merging_in_any_grouping_equals_one_pass() -> None:
    parts = summaries(blocks(3, count=8))
    combine = MergeScoreStatsFn()
    one = combine.create_accumulator()
    for block in parts:
        one = combine.add_input(one, block)
    left, right = combine.create_accumulator(), combine.create_accumulator()
    for i, block in enumerate(reversed(parts)):
        combine.add_input(left if i % 3 else right, block)
    merged = combine.extract_output(combine.merge_accumulators([right, left]))
    np.testing.assert_array_equal(merged.histogram, one.histogram)
    assert merged.totals.rows_read == one.totals.rows_read and merged.totals.dead == one.totals.dead
    assert merged.metrics() == pytest.approx(one.metrics())


def test_bins_are_monotonic_and_cover_zero_and_one() -> None:
    p = np.array([0.0, 1e-9, 0.1, 0.5, 0.9, 1 - 1e-9, 1.0])
    bins = logit_bins(p)
    assert bins[0] == 0 and bins[-1] == BINS - 1 and np.all(np.diff(bins) >= 0)
    assert bins[3] == BINS // 2


def test_unlabelled_rows_give_no_metrics_and_lost_rows_fail() -> None:
    stats = ScoreStats().add(BlockScores.of(3, {}, np.full(3, np.nan, np.float32),
                                            np.full(3, 0.5, np.float32)))  # fmt: skip
    assert stats.metrics() is None
    stats.check_rows()
    stats.add(BlockScores(rows_read=2))
    with pytest.raises(RuntimeError, match=r"rows lost: 5 read but 3 scored \+ 0 dead-lettered"):
        stats.check_rows()


def test_rows_per_input_file_merge_in_any_grouping_and_are_checked() -> None:
    from pipelines.accounting import FileRows, FilesRead
    from pipelines.score import build_stats

    y, p = np.array([1.0, 0.0, np.nan], np.float32), np.array([0.9, 0.2, 0.5], np.float32)
    parts = [BlockScores.of(4, {"bad_label": 1}, y, p, source="a.tsv"),
             BlockScores.of(3, {}, y, p, source="b.tsv"),
             BlockScores.of(2, {"bad_label": 2}, y[:0], p[:0], source="a.tsv")]  # fmt: skip
    combine = MergeScoreStatsFn()
    left, right = combine.create_accumulator(), combine.create_accumulator()
    for i, block in enumerate(parts):
        combine.add_input(left if i % 2 else right, block)
    total = combine.merge_accumulators([left, right])
    assert total.totals.files == {"a.tsv": FileRows(6, 3, 3), "b.tsv": FileRows(3, 3, 0)}
    matched = ("a.tsv", "b.tsv", "e.tsv")
    read = FilesRead(matched, {"a.tsv": 6, "b.tsv": 3, "e.tsv": 0})
    document = build_stats(total, {}, read)
    assert document["files"] == {
        "a.tsv": {"rows_read": 6, "rows_scored": 3, "rows_dead": 3},
        "b.tsv": {"rows_read": 3, "rows_scored": 3, "rows_dead": 0},
        "e.tsv": {"rows_read": 0, "rows_scored": 0, "rows_dead": 0},
    }
    with pytest.raises(RuntimeError, match=r"1 matched files were never read \(e.g. f.tsv\)"):
        build_stats(total, {}, FilesRead((*matched, "f.tsv"), read.lines))
    with pytest.raises(RuntimeError, match=r"rows lost in b.tsv: 4 read, 3 checked"):
        build_stats(total, {}, FilesRead(matched, {**read.lines, "b.tsv": 4}))
