"""Figures of the embedding-budget study (`budget_study.aggregate` tables): quality against
embedding parameters on log axes, and quality per number of probes.

Built without pyplot like every figure of `plots.py` (which saves them and owns the layouts'
labels and styles).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from unified_embedding.budget.params import BYTES_PER_PARAM
from unified_embedding.evaluation.plots import LAYOUT_LABELS, LAYOUT_STYLES


def size_label(value: float, unit: str = "") -> str:
    """`10 KB`, `2.5 MB` (unit "B", decimal as `budget.parse_budget`) or `10k`, `1M` (no unit)."""
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            prefix = prefix.upper() if unit else prefix
            return f"{value / scale:g} {prefix}{unit}" if unit else f"{value / scale:g}{prefix}"
    return f"{value:g} {unit}" if unit else f"{value:g}"


def log_ticks(axis: Axis, low: float, high: float, unit: str = "") -> None:
    """Readable labels on a log `axis` spanning [low, high]: labelled ticks at 10^k, or at
    1-2-5 x 10^k (1-2-3-5 under one decade) when the span is short; minor ticks unlabelled.

    Matplotlib's default labels minor ticks of an axis under about a decade, and those
    labels overlap; ticks chosen by span never do at the figure widths used here."""
    decades = math.log10(max(high, low * 1.0001) / low) if low > 0 else 1.0
    subs = (1.0,) if decades > 2.5 else (1.0, 2.0, 5.0) if decades > 1.0 else (1.0, 2.0, 3.0, 5.0)
    axis.set_major_locator(LogLocator(base=10.0, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda x, _: size_label(x, unit)))
    axis.set_minor_locator(LogLocator(base=10.0, subs=[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]))
    axis.set_minor_formatter(NullFormatter())


def seeds_note(points: pd.DataFrame) -> str:
    """How many seeds each point averages: "1 seed" (no spread to show) or "mean ± std over
    n seeds"; from the `runs` column of an `aggregate` table (unknown without it)."""
    if "runs" not in points or points.empty:
        return "mean ± std over seeds"
    low, high = int(points["runs"].min()), int(points["runs"].max())
    if high < 2:
        return "1 seed, no error bars"
    seeds = f"{low}-{high}" if low != high else f"{high}"
    return f"mean ± std over {seeds} seeds" + (", no bar at 1 seed" if low < 2 else "")


def _yerr(group: pd.DataFrame, metric: str) -> pd.Series | None:
    """The std over seeds as error bars; None (no bars) when no point has 2 seeds."""
    std = group[f"{metric}_std"]
    return None if std.isna().all() else std


def pareto_figure(
    points: pd.DataFrame, ceiling_auc: float | None = None, title: str = ""
) -> Figure:
    """AUC and log loss against embedding parameters (log scale), one line per layout.

    `points` is a `budget_study.aggregate` table of one dataset; error bars are the std over
    seeds (none with one seed; the title says how many). The ceiling (the planted model's AUC
    on generated data) is a dashed line. The bottom axis counts parameters, the top one their
    float32 size (the unit of the budgets).
    """
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    axes = figure.subplots(1, 2)
    known = [layout for layout in LAYOUT_LABELS if layout in set(points["layout"])]
    for layout in known + sorted(set(points["layout"]) - set(known)):
        group = points[points["layout"] == layout].sort_values("embedding_params")
        style = LAYOUT_STYLES.get(str(layout), {})
        for ax, metric in zip(axes, ("auc", "logloss"), strict=True):
            ax.errorbar(
                group["embedding_params"],
                group[f"{metric}_mean"],
                yerr=_yerr(group, metric),
                capsize=3,
                label=LAYOUT_LABELS.get(str(layout), str(layout)),
                **style,
            )
    if ceiling_auc is not None:
        axes[0].axhline(
            ceiling_auc,
            color="black",
            linestyle="--",
            label=f"planted model (ceiling) {ceiling_auc:.4f}",
        )
    params = points["embedding_params"].to_numpy(float)
    for ax, metric in zip(
        axes, ("AUC (higher is better)", "log loss (lower is better)"), strict=True
    ):
        ax.set_xscale("log")
        ax.set_xlim(params.min() / 1.6, params.max() * 1.6)
        low, high = ax.get_xlim()
        log_ticks(ax.xaxis, low, high)
        ax.set(xlabel="embedding parameters (log scale)", ylabel=metric)
        size = ax.secondary_xaxis("top", functions=(_to_bytes, _to_params))
        log_ticks(size.xaxis, low * BYTES_PER_PARAM, high * BYTES_PER_PARAM, unit="B")
        size.set_xlabel("float32 size", fontsize=9)
        ax.grid(True, which="major", alpha=0.4)
        ax.grid(True, which="minor", alpha=0.15)
    axes[0].legend(fontsize=8)
    note = seeds_note(points)
    figure.suptitle(f"{title} ({note})" if title else f"Quality vs embedding parameters ({note})")
    return figure


def _to_bytes(params: np.ndarray) -> np.ndarray:
    return np.asarray(params, dtype=float) * BYTES_PER_PARAM


def _to_params(size: np.ndarray) -> np.ndarray:
    return np.asarray(size, dtype=float) / BYTES_PER_PARAM


def probes_figure(points: pd.DataFrame, title: str = "") -> Figure:
    """AUC per number of probes at a fixed budget (`aggregate` of a sweep); error bars are the
    std over seeds, none with one seed (the title says how many)."""
    figure = Figure(figsize=(5.5, 4), layout="constrained")
    ax = figure.add_subplot()
    points = points.sort_values("probes")
    ax.errorbar(
        points["probes"], points["auc_mean"], yerr=_yerr(points, "auc"), marker="o", capsize=3
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(points["probes"]), [str(p) for p in points["probes"]])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="probes per field", ylabel="AUC")
    ax.set_title(f"{title or 'Probes per field'}\n({seeds_note(points)})", fontsize=11)
    ax.grid(True, alpha=0.3)
    return figure
