"""Figures of the evaluation DataFrames, as `matplotlib.figure.Figure` objects.

Figures are built without pyplot (no global state, no display backend: PNGs render with Agg), so
they work the same in notebooks, tests and scripts. `save` writes one as a PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from unified_embedding.budget.layouts import REGISTRY
from unified_embedding.budget.plan import BYTES_PER_PARAM

LAYOUT_LABELS = {name: layout.label for name, layout in REGISTRY.items()}
LAYOUT_STYLES: dict[str, dict[str, Any]] = {
    name: dict(layout.style) for name, layout in REGISTRY.items()
}


def save(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Writes `figure` as a PNG at `path` (folders created) and returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=dpi, bbox_inches="tight", format="png")
    return target


def calibration_figure(table: pd.DataFrame, title: str = "Calibration") -> Figure:
    """Mean predicted vs observed CTR per bucket of a `quality.calibration_table`."""
    figure = Figure(figsize=(5, 5))
    ax = figure.add_subplot()
    top = float(max(table["mean_predicted"].max(), table["observed_ctr"].max(), 1e-3)) * 1.05
    ax.plot([0, top], [0, top], color="grey", linestyle="--", label="perfect calibration")
    ax.plot(table["mean_predicted"], table["observed_ctr"], marker="o", label="model")
    ax.set(xlabel="mean predicted CTR (bucket)", ylabel="observed CTR (bucket)", title=title)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.legend()
    return figure


def score_histogram_figure(
    histogram: pd.DataFrame, title: str = "Scores by label", stacked: bool = False
) -> Figure:
    """A `quality.score_histogram` as two overlaid step histograms, each class normalised to
    sum to 1, so the two shapes compare even when positives are a few percent of the rows.
    `stacked=True` draws row counts instead, positives stacked on negatives (volume, not shape);
    the title and y label say which."""
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    edges = np.append(histogram["left"].to_numpy(float), float(histogram["right"].iloc[-1]))
    negatives = histogram["negatives"].to_numpy(float)
    positives = histogram["positives"].to_numpy(float)
    if stacked:
        width = histogram["right"] - histogram["left"]
        ax.bar(histogram["left"], negatives, width, align="edge", label="label 0")
        ax.bar(histogram["left"], positives, width, align="edge", bottom=negatives,
               label="label 1 (stacked on label 0)")  # fmt: skip
        ax.set(xlabel="predicted probability", ylabel="rows (stacked)",
               title=f"{title} (stacked counts)")  # fmt: skip
    else:
        for counts, name, color in ((negatives, "label 0", "tab:blue"),
                                    (positives, "label 1", "tab:orange")):  # fmt: skip
            total = counts.sum()
            share = counts / total if total else counts
            ax.stairs(share, edges, color=color, linewidth=1.8,
                      label=f"{name} ({int(total):,} rows)")  # fmt: skip
        ax.set(xlabel="predicted probability", ylabel="share of the label's rows",
               title=f"{title} (each label sums to 1)")  # fmt: skip
    ax.set_xlim(edges[0], edges[-1])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a bin
    return figure


def slice_auc_figure(
    slices: pd.DataFrame, field: str, overall_auc: float, overlapping: bool = False
) -> Figure:
    """AUC per value slice of `field` (a `quality.auc_by_slice`), overall AUC as a line.

    A slice without an AUC (too few rows, or one class only) gets no bar but an "n/a" note
    saying why: a bar at 0 would read as the worst possible ranking. `overlapping`: the field
    is multi-valued, a row is in the slice of each of its values (the title says so).
    """
    figure = Figure(figsize=(7, 0.4 * len(slices) + 1.6))
    ax = figure.add_subplot()
    labels = [f"{v} ({n:,} rows)" for v, n in zip(slices["value"], slices["rows"], strict=True)]
    positions = np.arange(len(slices))[::-1]  # first slice on top
    auc = slices["auc"].to_numpy(float)
    defined = np.isfinite(auc)
    ax.barh(positions[defined], auc[defined], color="tab:blue")
    for y, rows, positives in zip(positions[~defined], slices["rows"][~defined],
                                  slices["positives"][~defined], strict=True):  # fmt: skip
        why = "one class only" if positives in (0, rows) else "too few rows"
        ax.text(0.01, y, f"n/a ({why})", va="center", color="dimgrey", fontstyle="italic")
    ax.set_yticks(positions, labels)
    ax.set_ylim(-0.6, len(slices) - 0.4)  # rows without a bar (n/a) stay inside the axes
    ax.axvline(overall_auc, color="black", linestyle="--", label=f"all rows {overall_auc:.3f}")
    title = f"AUC by value of {field}"
    if overlapping:
        title += "\n(multi-valued: a row is in the slice of each of its values)"
    ax.set(xlabel="AUC", title=title)
    ax.set_xlim(0, 1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a bar or note
    return figure


def attention_heatmap(
    matrix: np.ndarray, field_names: Sequence[str], title: str = "Mean attention"
) -> Figure:
    """`(fields, fields)` mean attention: row i = how field i attends to each field j.

    Colours run from 0 to the largest weight (a sequential map), not from the smallest to the
    largest: min-max scaling stretches a near-uniform matrix (all weights close to
    1 / fields) over the whole colour range and makes noise look like structure. With 0 as
    the floor, colour is proportional to weight. The colorbar marks the uniform weight.
    """
    m = np.asarray(matrix, dtype=np.float64)
    size = max(5.0, 0.2 * len(field_names) + 2)
    figure = Figure(figsize=(size + 1, size))
    ax = figure.add_subplot()
    top = float(m.max()) if m.size and m.max() > 0 else 1.0
    image = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=top)
    ticks = np.arange(len(field_names))
    ax.set_xticks(ticks, list(field_names), rotation=90, fontsize=7)
    ax.set_yticks(ticks, list(field_names), fontsize=7)
    ax.set(xlabel="attended field (key)", ylabel="attending field (query)", title=title)
    uniform = 1.0 / max(len(field_names), 1)
    colorbar = figure.colorbar(image, ax=ax, fraction=0.046)
    colorbar.ax.axhline(uniform, color="white", linewidth=2)
    colorbar.set_label(f"mean weight, 0 to max (white line: uniform 1/{len(field_names)} "
                       f"= {uniform:.3f})")  # fmt: skip
    return figure


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
            ax.errorbar(group["embedding_params"], group[f"{metric}_mean"],
                        yerr=_yerr(group, metric), capsize=3,
                        label=LAYOUT_LABELS.get(str(layout), str(layout)), **style)  # fmt: skip
    if ceiling_auc is not None:
        axes[0].axhline(ceiling_auc, color="black", linestyle="--",
                        label=f"planted model (ceiling) {ceiling_auc:.4f}")  # fmt: skip
    params = points["embedding_params"].to_numpy(float)
    for ax, metric in zip(axes, ("AUC (higher is better)", "log loss (lower is better)"),
                          strict=True):  # fmt: skip
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
    ax.errorbar(points["probes"], points["auc_mean"], yerr=_yerr(points, "auc"),
                marker="o", capsize=3)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(points["probes"]), [str(p) for p in points["probes"]])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="probes per field", ylabel="AUC")
    ax.set_title(f"{title or 'Probes per field'}\n({seeds_note(points)})", fontsize=11)
    ax.grid(True, alpha=0.3)
    return figure


def run_curves_figure(
    scalars: pd.DataFrame,
    tags: Sequence[str],
    split: str,
    steps_per_eval: Mapping[str, int] | None = None,
) -> Figure:
    """One panel per tag: its value at each evaluation for every run (`runs.read_scalars`).

    Keras logs `epoch_*` scalars once per evaluation with the evaluation's index (0, 1, ...) as
    their step, not the training step. With `steps_per_eval` (run -> `eval_every` of its
    `train_summary.json`) the x-axis is the training step at which each evaluation ran,
    (index + 1) * eval_every; without it, the evaluation index, labelled so.
    """
    figure = Figure(figsize=(5 * len(tags), 4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(tags)))
    chosen = scalars[scalars["split"] == split]
    every = dict(steps_per_eval or {})
    exact = bool(every) and set(chosen["run"]) <= set(every)
    xlabel = "training step (end of each evaluation period)" if exact else "evaluation index"
    for ax, tag in zip(axes, tags, strict=True):
        xs: set[int] = set()
        for run, group in chosen[chosen["tag"] == tag].groupby("run"):
            group = group.sort_values("step")
            x = (group["step"] + 1) * every[str(run)] if exact else group["step"]
            ax.plot(x, group["value"], marker="o", label=str(run))
            xs.update(int(v) for v in x)
        ax.set(xlabel=xlabel, ylabel=tag, title=f"{split}: {tag}")
        if 0 < len(xs) <= 10:  # few evaluations: a tick at each, not at 21, 24, 27, ...
            ax.set_xticks(sorted(xs))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    return figure


def run_bars_figure(table: pd.DataFrame, columns: Sequence[str]) -> Figure:
    """Side-by-side bars of `columns` per run (one row per run, a `run` column).

    The y-axis starts near the smallest value, not at 0 (AUCs of 0.72 and 0.73 would look
    equal), which exaggerates bar lengths: each bar carries its value and the axis says so."""
    figure = Figure(figsize=(4 * len(columns), 4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(columns)))
    for ax, column in zip(axes, columns, strict=True):
        bars = ax.bar(table["run"].astype(str), table[column])
        ax.bar_label(bars, fmt="%.4f", fontsize=8)
        low = float(table[column].min())
        from_zero = low <= 0
        ax.set_ylim(min(0.0, low) if from_zero else low * 0.95, float(table[column].max()) * 1.03)
        ax.set(title=column, ylabel="" if from_zero else "value (axis not from 0)")
        ax.tick_params(axis="x", rotation=30)
    return figure
