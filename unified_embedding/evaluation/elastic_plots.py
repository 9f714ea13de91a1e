"""Figures of the elastic-table benchmark (`benchmarks/elastic.py`): test AUC against the bytes of
the table served, for one nested run served at each width (float32 and int8) and for tables
trained alone at each width, with the Pareto front a deployment size is picked from.

`elastic_table(runs)` turns the benchmark line's `runs` into one row per dataset, model and
width: the AUC averaged over seeds, the table's bytes. Built without pyplot, like `plots.py`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

MODELS: dict[str, dict[str, Any]] = {  # how each kind of model is drawn
    "nested float32": {"color": "tab:blue", "marker": "o"},
    "nested int8": {"color": "tab:red", "marker": "v"},
    "trained alone": {"color": "grey", "marker": "s", "linestyle": "--"},
}


def _model_of(key: str, widths: Mapping[str, int]) -> tuple[str, int]:
    """A run's AUC key -> (model, width): `nested_4_int8`, `independent_2`, `today`."""
    if key == "today":
        return "trained alone", widths["today"]
    parts = key.split("_")
    if parts[0] == "nested" and len(parts) == 3:
        return f"nested {parts[2]}", int(parts[1])
    if parts[0] == "independent" and len(parts) == 2:
        return "trained alone", int(parts[1])
    raise ValueError(
        f"`runs` should hold the elastic benchmark's AUC keys (today, nested_<m>_<dtype>, "
        f"independent_<m>). Received: `{key}`"
    )


def elastic_table(runs: Iterable[Mapping[str, Any]], full_width: int) -> pd.DataFrame:
    """Columns dataset, model, width, table_bytes, auc (mean over seeds), auc_sd, seeds."""
    rows = []
    for run in runs:
        for key, auc in run["auc"].items():
            model, width = _model_of(key, {"today": full_width})
            rows.append(
                {
                    "dataset": run["dataset"],
                    "model": model,
                    "width": width,
                    "table_bytes": run["table_bytes"][key],
                    "auc": auc,
                }
            )
    if not rows:
        raise ValueError("`runs` should hold at least one run of the elastic benchmark")
    table = pd.DataFrame(rows).groupby(["dataset", "model", "width"], sort=False)
    return table.agg(
        table_bytes=("table_bytes", "first"),
        auc=("auc", "mean"),
        auc_sd=("auc", "std"),
        seeds=("auc", "size"),
    ).reset_index()


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """The points no other beats on both bytes (fewer) and AUC (higher), by bytes."""
    ordered = points.sort_values(["table_bytes", "auc"], ascending=[True, False])
    best, kept = float("-inf"), []
    for index, auc in zip(ordered.index, ordered["auc"], strict=True):
        if auc > best:
            kept.append(index)
            best = auc
    return ordered.loc[kept]


def pareto_figure(table: pd.DataFrame) -> Figure:
    """One panel per dataset: AUC against served table bytes (log scale), a line per model
    through its widths (labelled), and the Pareto front dotted."""
    datasets = list(dict.fromkeys(table["dataset"]))
    figure = Figure(figsize=(4.5 * len(datasets), 4), layout="constrained")
    axes = figure.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset in zip(axes, datasets, strict=True):
        points = table[table["dataset"] == dataset]
        for model, rows in points.groupby("model", sort=False):
            rows = rows.sort_values("table_bytes")
            style = MODELS.get(str(model), {"marker": "o"})
            ax.plot(rows["table_bytes"], rows["auc"], label=str(model), **style)
            for x, y, width in zip(rows["table_bytes"], rows["auc"], rows["width"], strict=True):
                ax.annotate(
                    str(width),
                    (x, y),
                    textcoords="offset points",
                    xytext=(3, 3),
                    fontsize="x-small",
                )
        front = pareto_front(points)
        ax.step(
            front["table_bytes"],
            front["auc"],
            where="post",
            color="black",
            linestyle=":",
            alpha=0.6,
            label="Pareto front",
        )
        ax.set(title=dataset, xscale="log", xlabel="served table bytes")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test AUC (mean over seeds)")
    axes[0].legend(fontsize="small")
    return figure
