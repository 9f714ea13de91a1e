"""The daily benchmark's figure draws what its results hold: a panel per layout (or strategy),
a line per strategy (or layout) in test-day order, gaps where a metric is None, the jump day."""

import numpy as np
import pytest

from unified_embedding.evaluation import daily_plots, plots

# Two layouts x two strategies x two days, as `benchmarks/daily.py` prints them (days shuffled):
#   layout        strategy  test_day  auc    new_id_auc
#   unified       warm      3         0.72   0.70
#   unified       warm      2         0.70   None
#   unified       retrain   2         0.70   0.69
#   unified       retrain   3         0.73   0.71
#   collisionless ...       ...       unified's - 0.01, new_id_auc unified's - 0.05
RESULTS = [
    {"layout": "unified", "strategy": "warm", "day": 2, "test_day": 3, "auc": 0.72},
    {"layout": "unified", "strategy": "warm", "day": 1, "test_day": 2, "auc": 0.70},
    {"layout": "unified", "strategy": "retrain", "day": 1, "test_day": 2, "auc": 0.70},
    {"layout": "unified", "strategy": "retrain", "day": 2, "test_day": 3, "auc": 0.73},
]
NEW_ID_AUC = [0.70, None, 0.69, 0.71]
for entry, new in zip(RESULTS, NEW_ID_AUC, strict=True):
    entry["new_id_auc"] = new
RESULTS += [
    {
        **entry,
        "layout": "collisionless",
        "auc": entry["auc"] - 0.01,
        "new_id_auc": None if entry["new_id_auc"] is None else entry["new_id_auc"] - 0.05,
    }
    for entry in RESULTS
]


def lines_by_label(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
        for line in ax.lines
    }


def test_a_panel_per_layout_and_a_line_per_strategy_in_test_day_order() -> None:
    table = daily_plots.daily_table(RESULTS)
    figure = daily_plots.next_day_figure(table, "auc")
    unified, free = figure.axes
    assert unified.get_title() == plots.LAYOUT_LABELS["unified"]
    assert free.get_title() == plots.LAYOUT_LABELS["collisionless"]
    drawn = lines_by_label(unified)
    warm = daily_plots.STRATEGY_LABELS["warm"]
    retrain = daily_plots.STRATEGY_LABELS["retrain"]
    assert set(drawn) == {warm, retrain}
    np.testing.assert_allclose(drawn[warm][0], [2, 3])
    np.testing.assert_allclose(drawn[warm][1], [0.70, 0.72])
    np.testing.assert_allclose(lines_by_label(free)[retrain][1], [0.69, 0.72])
    assert unified.get_ylabel() == daily_plots.METRIC_LABELS["auc"]


def test_a_panel_per_strategy_and_a_line_per_layout() -> None:
    table = daily_plots.daily_table(RESULTS)
    figure = daily_plots.next_day_figure(table, "auc", panels="strategy")
    assert [ax.get_title() for ax in figure.axes] == [
        daily_plots.STRATEGY_LABELS["warm"],
        daily_plots.STRATEGY_LABELS["retrain"],
    ]
    drawn = lines_by_label(figure.axes[0])
    assert set(drawn) == {plots.LAYOUT_LABELS["unified"], plots.LAYOUT_LABELS["collisionless"]}
    np.testing.assert_allclose(drawn[plots.LAYOUT_LABELS["collisionless"]][1], [0.69, 0.71])


def test_a_missing_metric_is_a_gap_and_the_jump_day_is_marked() -> None:
    table = daily_plots.daily_table(RESULTS)
    figure = daily_plots.next_day_figure(table, "new_id_auc", jump_day=3)
    drawn = lines_by_label(figure.axes[0])
    warm = drawn[daily_plots.STRATEGY_LABELS["warm"]][1]
    assert np.isnan(warm[0]) and warm[1] == pytest.approx(0.70)
    jump = drawn["click rate jumps"]
    np.testing.assert_allclose(jump[0], [3, 3])


def test_bad_arguments_are_refused_naming_them() -> None:
    table = daily_plots.daily_table(RESULTS)
    with pytest.raises(ValueError, match=r"`metric=.ctr.`"):
        daily_plots.next_day_figure(table, "ctr")
    with pytest.raises(ValueError, match=r"`panels=.day.`"):
        daily_plots.next_day_figure(table, panels="day")
    with pytest.raises(ValueError, match=r"without \['test_day'\]"):
        daily_plots.daily_table([{"layout": "unified", "strategy": "warm"}])
