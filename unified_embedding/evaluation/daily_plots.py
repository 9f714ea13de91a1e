"""Figures of the daily benchmark (`benchmarks/daily.py`): a metric of each day's model on the
next day's rows, per strategy and embedding layout.

`results` is the benchmark line's `results` list as a DataFrame (`daily_table`): one row per
layout, strategy and training day, with the metrics of that day's model on the day after
(`test_day`). Built without pyplot like every figure of `plots.py` (which saves them and owns
the layouts' labels and styles).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unified_embedding.evaluation.plots import LAYOUT_LABELS, LAYOUT_STYLES

STRATEGY_LABELS = {
    "frozen": "day 1's model, frozen",
    "retrain": "retrained on every day so far",
    "warm": "warm-started on the new day",
}
STRATEGY_STYLES: dict[str, dict[str, Any]] = {
    "frozen": {"color": "grey", "linestyle": "--", "marker": "x"},
    "retrain": {"color": "black", "marker": "s"},
    "warm": {"color": "tab:red", "marker": "o"},
}
METRIC_LABELS = {
    "auc": "next-day AUC",
    "logloss": "next-day log loss",
    "calibration": "next-day calibration (predicted / observed CTR)",
    "new_id_auc": "next-day AUC, rows with a value unseen on day 1",
}
PANELS = ("layout", "strategy")  # what one panel holds; its lines are the other
COLUMNS = ("layout", "strategy", "test_day")


def daily_table(results: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The benchmark line's `results` as a DataFrame (a metric it could not compute, None,
    is drawn as a gap)."""
    table = pd.DataFrame(list(results))
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(
            f"`results` should hold {list(COLUMNS)} per entry (the daily benchmark's "
            f"`results`). Received entries without {missing}"
        )
    return table


def next_day_figure(
    table: pd.DataFrame,
    metric: str = "auc",
    panels: str = "layout",
    jump_day: int | None = None,
) -> Figure:
    """`metric` against the test day, one panel per layout (a line per strategy) or per
    strategy (a line per layout, `panels="strategy"`), on one shared y-axis. `jump_day`: the
    day the click rate jumps, marked by a vertical line (the models of the day before do not
    know it)."""
    if metric not in table.columns:
        raise ValueError(
            f"`metric` should be a column of the table, one of "
            f"{sorted(set(table.columns) - set(COLUMNS))}. Received: `metric={metric!r}`"
        )
    if panels not in PANELS:
        raise ValueError(f"`panels` should be one of {PANELS}. Received: `panels={panels!r}`")
    lines = PANELS[1 - PANELS.index(panels)]
    keys = list(dict.fromkeys(table[panels]))
    figure = Figure(figsize=(4.5 * len(keys), 4), layout="constrained")
    axes = figure.subplots(1, len(keys), sharey=True, squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        for name, rows in table[table[panels] == key].groupby(lines, sort=False):
            rows = rows.sort_values("test_day")
            label, style = _look(lines, str(name))
            ax.plot(rows["test_day"], rows[metric].astype(float), label=label, **style)
        if jump_day is not None:
            ax.axvline(jump_day, color="tab:purple", linestyle=":", label="click rate jumps")
        ax.set(title=_look(panels, str(key))[0], xlabel="test day (the model's day + 1)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(METRIC_LABELS.get(metric, metric))
    axes[0].legend(fontsize="small")
    return figure


def _look(kind: str, name: str) -> tuple[str, dict[str, Any]]:
    """The label and line style of a layout or strategy (its name and matplotlib's defaults
    when unknown)."""
    labels, styles = (
        (LAYOUT_LABELS, LAYOUT_STYLES) if kind == "layout" else (STRATEGY_LABELS, STRATEGY_STYLES)
    )
    return labels.get(name, name), dict(styles.get(name, {"marker": "o"}))
