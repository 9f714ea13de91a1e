"""Figures of the evaluation DataFrames, as `matplotlib.figure.Figure` objects: model quality
(calibration, scores, slices, attention) and training runs; the budget study's are in
`budget_plots.py`.

Figures are built without pyplot (no global state, no display backend: PNGs render with Agg), so
they work the same in notebooks, tests and scripts. `save` writes one as a PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from unified_embedding.budget.layouts import REGISTRY
from unified_embedding.evaluation.quality import MIN_CLASS_ROWS

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
    the title and y label say which. The x-axis spans the histogram's bins: the scores' own
    range when it was zoomed, and the x label gives it."""
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    edges = np.append(histogram["left"].to_numpy(float), float(histogram["right"].iloc[-1]))
    negatives = histogram["negatives"].to_numpy(float)
    positives = histogram["positives"].to_numpy(float)
    if stacked:
        width = histogram["right"] - histogram["left"]
        ax.bar(histogram["left"], negatives, width, align="edge", label="label 0")
        label = "label 1 (stacked on label 0)"
        ax.bar(histogram["left"], positives, width, align="edge", bottom=negatives, label=label)
        ax.set(ylabel="rows (stacked)", title=f"{title} (stacked counts)")
    else:
        for counts, name, color in (
            (negatives, "label 0", "tab:blue"),
            (positives, "label 1", "tab:orange"),
        ):
            total = counts.sum()
            share = counts / total if total else counts
            label = f"{name} ({int(total):,} rows)"
            ax.stairs(share, edges, color=color, linewidth=1.8, label=label)
        ax.set(ylabel="share of the label's rows", title=f"{title} (each label sums to 1)")
    ax.set_xlabel(f"predicted probability ({edges[0]:.3g} to {edges[-1]:.3g})")
    ax.set_xlim(edges[0], edges[-1])
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over a bin
    return figure


def slice_auc_figure(
    slices: pd.DataFrame, field: str, overall_auc: float, overlapping: bool = False
) -> Figure:
    """AUC per value slice of `field` (a `quality.auc_by_slice`), overall AUC as a line.

    Each slice is labelled with its rows and positives (the empty value as "(missing)"), each
    bar with its AUC. A bar resting on
    fewer than `quality.MIN_CLASS_ROWS` rows of its rarer class (`reliable` False) is pale,
    hatched and marked "unreliable". A slice without an AUC (too few rows, or one class only)
    gets no bar but an "n/a" note saying why: a bar at 0 would read as the worst possible
    ranking. `overlapping`: the field is multi-valued, a row is in the slice of each of its
    values (the title says so).
    """
    figure = Figure(figsize=(7.5, 0.45 * len(slices) + 1.6))
    ax = figure.add_subplot()
    rows, positives = slices["rows"].to_numpy(int), slices["positives"].to_numpy(int)
    labels = [
        f"{v or '(missing)'} ({n:,} rows, {p:,} positives)"
        for v, n, p in zip(slices["value"], rows, positives, strict=True)
    ]
    positions = np.arange(len(slices))[::-1]  # first slice on top
    auc = slices["auc"].to_numpy(float)
    if "reliable" in slices:
        reliable = slices["reliable"].to_numpy(bool)
    else:
        reliable = np.minimum(positives, rows - positives) >= MIN_CLASS_ROWS
    _slice_bars(ax, positions, auc, reliable)
    for y, n, p, value in zip(positions, rows, positives, auc, strict=True):
        if not np.isfinite(value):
            why = "one class only" if p in (0, n) else "too few rows"
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


def _slice_bars(ax: Axes, positions: np.ndarray, auc: np.ndarray, reliable: np.ndarray) -> None:
    """Bars of the defined AUCs, pale and hatched where unreliable, each with its value."""
    defined = np.isfinite(auc)
    solid, pale = defined & reliable, defined & ~reliable
    ax.barh(positions[solid], auc[solid], color="tab:blue")
    if pale.any():
        label = f"unreliable: under {MIN_CLASS_ROWS} rows of a class"
        ax.barh(positions[pale], auc[pale], color="tab:blue", alpha=0.35, hatch="//", label=label)
    for y, value, ok in zip(positions[defined], auc[defined], reliable[defined], strict=True):
        inside = value > 0.3  # room for the text in the bar, else after its end
        ax.text(
            value - 0.01 if inside else value + 0.01,
            y,
            f"{value:.3f}" if ok else f"{value:.3f} unreliable",
            va="center",
            ha="right" if inside else "left",
            fontsize=8,
            color="white" if ok and inside else "black",
            bbox=None if ok else {"facecolor": "white", "edgecolor": "none", "pad": 1},
        )


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
    colorbar.set_label(
        f"mean weight, 0 to max (white line: uniform 1/{len(field_names)} = {uniform:.3f})"
    )
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
