"""Figures of the evaluation DataFrames, as `matplotlib.figure.Figure` objects.

Figures are built without pyplot (no global state, no display backend: PNGs render with Agg), so
they work the same in notebooks, tests and scripts. `save` writes one as a PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from unified_embedding.layouts import REGISTRY

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


def score_histogram_figure(histogram: pd.DataFrame, title: str = "Scores") -> Figure:
    """Stacked bars of a `quality.score_histogram` by label."""
    figure = Figure(figsize=(6, 4))
    ax = figure.add_subplot()
    width = histogram["right"] - histogram["left"]
    ax.bar(histogram["left"], histogram["negatives"], width, align="edge", label="label 0")
    ax.bar(histogram["left"], histogram["positives"], width, align="edge",
           bottom=histogram["negatives"], label="label 1")  # fmt: skip
    ax.set(xlabel="predicted probability", ylabel="rows", title=title)
    ax.legend()
    return figure


def slice_auc_figure(slices: pd.DataFrame, field: str, overall_auc: float) -> Figure:
    """AUC per value slice of `field` (a `quality.auc_by_slice`), overall AUC as a line."""
    figure = Figure(figsize=(7, 4))
    ax = figure.add_subplot()
    labels = [f"{v} ({n})" for v, n in zip(slices["value"], slices["rows"], strict=True)]
    ax.barh(labels[::-1], slices["auc"].fillna(0.0)[::-1])
    ax.axvline(overall_auc, color="black", linestyle="--", label=f"all rows {overall_auc:.3f}")
    ax.set(xlabel="AUC (0 = too few rows or one class)", title=f"AUC by value of {field}")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right")
    return figure


def attention_heatmap(
    matrix: np.ndarray, field_names: Sequence[str], title: str = "Mean attention"
) -> Figure:
    """`(fields, fields)` mean attention: row i = how field i attends to each field j."""
    size = max(5.0, 0.2 * len(field_names) + 2)
    figure = Figure(figsize=(size + 1, size))
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="viridis")
    ticks = np.arange(len(field_names))
    ax.set_xticks(ticks, list(field_names), rotation=90, fontsize=7)
    ax.set_yticks(ticks, list(field_names), fontsize=7)
    ax.set(xlabel="attended field (key)", ylabel="attending field (query)", title=title)
    figure.colorbar(image, ax=ax, fraction=0.046)
    return figure


def pareto_figure(
    points: pd.DataFrame, ceiling_auc: float | None = None, title: str = ""
) -> Figure:
    """AUC and log loss against embedding parameters (log scale), one line per layout.

    `points` is a `budget_study.aggregate` table of one dataset; error bars are the std over
    seeds. The ceiling (the planted model's AUC on generated data) is a dashed line.
    """
    figure = Figure(figsize=(12, 4.5))
    axes = figure.subplots(1, 2)
    known = [layout for layout in LAYOUT_LABELS if layout in set(points["layout"])]
    for layout in known + sorted(set(points["layout"]) - set(known)):
        group = points[points["layout"] == layout].sort_values("embedding_params")
        style = LAYOUT_STYLES.get(str(layout), {})
        for ax, metric in zip(axes, ("auc", "logloss"), strict=True):
            ax.errorbar(group["embedding_params"], group[f"{metric}_mean"],
                        yerr=group[f"{metric}_std"].fillna(0.0), capsize=3,
                        label=LAYOUT_LABELS.get(str(layout), str(layout)), **style)  # fmt: skip
    if ceiling_auc is not None:
        axes[0].axhline(ceiling_auc, color="black", linestyle="--",
                        label=f"planted model (ceiling) {ceiling_auc:.4f}")  # fmt: skip
    for ax, metric in zip(axes, ("AUC (higher is better)", "log loss (lower is better)"),
                          strict=True):  # fmt: skip
        ax.set_xscale("log")
        ax.set(xlabel="embedding parameters (log scale)", ylabel=metric)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(title or "Quality vs embedding parameters (mean ± std over seeds)")
    return figure


def probes_figure(points: pd.DataFrame, title: str = "") -> Figure:
    """AUC (mean ± std) per number of probes at a fixed budget (`aggregate` of a sweep)."""
    figure = Figure(figsize=(5, 4))
    ax = figure.add_subplot()
    points = points.sort_values("probes")
    ax.errorbar(points["probes"], points["auc_mean"], yerr=points["auc_std"].fillna(0.0),
                marker="o", capsize=3)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(points["probes"]), [str(p) for p in points["probes"]])
    ax.set(xlabel="probes per field", ylabel="AUC", title=title or "Probes per field")
    ax.grid(True, alpha=0.3)
    return figure


def run_curves_figure(scalars: pd.DataFrame, tags: Sequence[str], split: str) -> Figure:
    """One panel per tag: its value against step for every run (`runs.read_scalars` rows)."""
    figure = Figure(figsize=(5 * len(tags), 4))
    axes = np.atleast_1d(figure.subplots(1, len(tags)))
    chosen = scalars[scalars["split"] == split]
    for ax, tag in zip(axes, tags, strict=True):
        for run, group in chosen[chosen["tag"] == tag].groupby("run"):
            group = group.sort_values("step")
            ax.plot(group["step"], group["value"], marker="o", label=str(run))
        ax.set(xlabel="step", ylabel=tag, title=f"{split}: {tag}")
        ax.legend(fontsize=8)
    return figure


def run_bars_figure(table: pd.DataFrame, columns: Sequence[str]) -> Figure:
    """Side-by-side bars of `columns` per run (one row per run, a `run` column)."""
    figure = Figure(figsize=(5 * len(columns), 4))
    axes = np.atleast_1d(figure.subplots(1, len(columns)))
    for ax, column in zip(axes, columns, strict=True):
        ax.bar(table["run"].astype(str), table[column])
        low = float(table[column].min())
        ax.set_ylim(min(0.0, low) if low <= 0 else low * 0.95, float(table[column].max()) * 1.02)
        ax.set(title=column)
        ax.tick_params(axis="x", rotation=30)
    return figure
