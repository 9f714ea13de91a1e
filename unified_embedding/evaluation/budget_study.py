"""The embedding-budget study: layouts x parameter budgets x seeds, and a probes sweep.

Each run is one `experiment.train_and_evaluate` (AutoInt, in memory) on the same rows; seeds vary
the model's initialisation and the shuffle order, not the data. The result is a tidy DataFrame,
one row per run; `aggregate` turns it into mean and std per (layout, budget, probes) point.

Layouts at a budget: see `layouts.py`. A layout that does not `spend_budget` (collision-free:
one row per distinct training value) has its size fixed by the cardinalities, NOT by the budget,
so it is trained once per seed and reported at its true parameter count (`budget` =
"collision-free"), never at a budget it exceeds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import tensorflow as tf

from unified_embedding.budget.layouts import LAYOUTS, get_layout
from unified_embedding.budget.params import BYTES_PER_PARAM
from unified_embedding.budget.plan import parse_budget
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.evaluation.study_data import StudyData
from unified_embedding.models.autoint import AutoIntConfig
from unified_embedding.training.experiment import TrainConfig, train_and_evaluate

COLLISION_FREE = "collision-free"  # the `budget` label of collision-free runs
Progress = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class StudyConfig:
    """What the study trains.

    Attributes:
      budgets: embedding budgets (float32 bytes, e.g. "10KB") for the hashed layouts.
      layouts: a subset of `layouts.LAYOUTS`.
      seeds: one run per seed at every point; report mean and std over them.
      probes: probes per categorical field for the sweep (each must divide `embedding_dim`;
        the table width becomes embedding_dim / probes so a field stays embedding_dim wide).
      probes_budget: the fixed budget of the probes sweep.
      train: optimisation settings; its `seed` is replaced by each of `seeds`.
      model: AutoInt's hyper-parameters (default: the paper's).
    """

    budgets: tuple[str, ...] = ("10KB", "30KB", "100KB", "300KB", "1MB")
    layouts: tuple[str, ...] = LAYOUTS
    seeds: tuple[int, ...] = (0, 1, 2)
    probes: tuple[int, ...] = (1, 2, 4)
    probes_budget: str = "100KB"
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    model: AutoIntConfig = dataclasses.field(default_factory=AutoIntConfig)

    def __post_init__(self) -> None:
        for name in ("budgets", "layouts", "seeds"):
            if not getattr(self, name):
                raise ValueError(f"`{name}` should not be empty. Received: `{name}=()`")
        unknown = [layout for layout in self.layouts if layout not in LAYOUTS]
        if unknown:
            raise ValueError(f"`layouts` should be among {LAYOUTS}. Received: `{unknown}`")
        for budget in (*self.budgets, self.probes_budget):
            parse_budget(budget)  # raises on a malformed size
        if any(p < 1 for p in self.probes):
            raise ValueError(f"`probes` should be >= 1. Received: `probes={self.probes}`")

    @property
    def budget_bytes(self) -> tuple[int, ...]:
        return tuple(parse_budget(b) for b in self.budgets)


def with_probes(spec: FeatureSpec, probes: int) -> FeatureSpec:
    """`spec` with `probes` probes on every hashed field and a table `embedding_dim / probes`
    wide, so each field's concatenated probes are exactly `embedding_dim` wide (no projection)."""
    if spec.embedding_dim % probes:
        raise ValueError(
            f"`probes` should divide `embedding_dim={spec.embedding_dim}`. Received: `{probes}`"
        )
    fields = tuple(dataclasses.replace(f, probes=probes) if f.is_hashed else f for f in spec.fields)
    table = dataclasses.replace(spec.table, width=spec.embedding_dim // probes)
    return spec.replace(fields=fields, table=table)


def run_one(
    data: StudyData,
    spec: FeatureSpec,
    layout: str,
    budget: str,
    config: StudyConfig,
    seed: int,
) -> dict[str, Any]:
    """One trained and evaluated model as a record of the study's DataFrame."""
    started = time.perf_counter()
    train = dataclasses.replace(config.train, seed=seed)
    _, result = train_and_evaluate(
        spec, layout, data.train, data.evaluation, parse_budget(budget), config.model, train
    )
    tf.keras.backend.clear_session()  # many runs in one process: drop the old graphs
    collision_free = not get_layout(layout).spends_budget
    return {
        "dataset": data.name,
        "layout": layout,
        "budget": COLLISION_FREE if collision_free else budget,
        "budget_bytes": (
            result.embedding_params * BYTES_PER_PARAM if collision_free else result.budget_bytes
        ),
        "probes": spec.categorical_fields[0].probes,
        "table_width": spec.table.width,
        "seed": seed,
        "embedding_params": result.embedding_params,
        "auc": result.auc,
        "logloss": result.logloss,
        "train_seconds": result.train_seconds,
        "seconds": time.perf_counter() - started,
    }


def run_budget_study(
    data: StudyData, config: StudyConfig, progress: Progress | None = None
) -> pd.DataFrame:
    """Every layout at every budget for every seed (collision-free: once per seed)."""
    records = []
    for seed in config.seeds:
        for layout in config.layouts:
            # A collision-free table ignores the budget; the largest one just sizes the plan.
            spends = get_layout(layout).spends_budget
            budgets = config.budgets if spends else config.budgets[-1:]
            for budget in budgets:
                records.append(run_one(data, data.spec, layout, budget, config, seed))
                if progress:
                    progress(records[-1])
    return pd.DataFrame.from_records(records)


def run_probes_sweep(
    data: StudyData,
    config: StudyConfig,
    progress: Progress | None = None,
    reuse: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The unified layout at `probes_budget` with each number of probes, for every seed.

    A run of `reuse` (the budget study's runs on the same data and config) with the same
    dataset, layout, budget, probes, table width and seed is the same training, so it is taken,
    not redone.
    """
    keys = ["dataset", "layout", "budget", "probes", "table_width", "seed"]
    done = {} if reuse is None else {tuple(r[k] for k in keys): r for r in reuse.to_dict("records")}
    records = []
    for seed in config.seeds:
        for probes in config.probes:
            spec = with_probes(data.spec, probes)
            key = (data.name, "unified", config.probes_budget, probes, spec.table.width, seed)
            if key in done:
                records.append(dict(done[key]))
                continue
            records.append(run_one(data, spec, "unified", config.probes_budget, config, seed))
            if progress:
                progress(records[-1])
    return pd.DataFrame.from_records(records)


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (over seeds) of AUC and log loss per (dataset, layout, budget, probes).

    Columns: dataset, layout, budget, probes, budget_bytes, embedding_params (mean), runs,
    auc_mean, auc_std, logloss_mean, logloss_std; sorted by layout then parameters. The std is
    the sample std (ddof=1), NaN for a single seed.
    """
    keys = ["dataset", "layout", "budget", "probes"]
    grouped = runs.groupby(keys, sort=False)
    out = grouped.agg(
        budget_bytes=("budget_bytes", "mean"),
        embedding_params=("embedding_params", "mean"),
        runs=("seed", "count"),
        auc_mean=("auc", "mean"),
        auc_std=("auc", "std"),
        logloss_mean=("logloss", "mean"),
        logloss_std=("logloss", "std"),
    ).reset_index()
    out["embedding_params"] = out["embedding_params"].round().astype(int)
    return out.sort_values(["dataset", "layout", "embedding_params"]).reset_index(drop=True)


def compare_layouts(
    points: pd.DataFrame, layout: str = "unified", baseline: str = "per_feature"
) -> pd.DataFrame:
    """`layout` vs `baseline` at each shared budget of an `aggregate` table.

    Columns: dataset, budget, budget_bytes, auc_<layout>, auc_<baseline>, auc_delta,
    auc_delta_std (sqrt of the summed variances of the two means' runs), logloss_delta
    (negative = `layout` better), wins (auc_delta > 0).
    """
    columns = ["dataset", "budget", "budget_bytes", "auc_mean", "auc_std", "logloss_mean"]
    a = points[points["layout"] == layout][columns]
    b = points[points["layout"] == baseline][columns]
    merged = a.merge(b, on=["dataset", "budget", "budget_bytes"], suffixes=("_a", "_b"))
    return pd.DataFrame(
        {
            "dataset": merged["dataset"],
            "budget": merged["budget"],
            "budget_bytes": merged["budget_bytes"],
            f"auc_{layout}": merged["auc_mean_a"],
            f"auc_{baseline}": merged["auc_mean_b"],
            "auc_delta": merged["auc_mean_a"] - merged["auc_mean_b"],
            "auc_delta_std": (merged["auc_std_a"] ** 2 + merged["auc_std_b"] ** 2) ** 0.5,
            "logloss_delta": merged["logloss_mean_a"] - merged["logloss_mean_b"],
            "wins": merged["auc_mean_a"] > merged["auc_mean_b"],
        }
    ).sort_values(["dataset", "budget_bytes"], ignore_index=True)


def pareto_table(points: pd.DataFrame) -> pd.DataFrame:
    """One row per budget (and one for collision-free), one column per layout, each cell
    `"AUC mean ± std / logloss mean ± std (params)"`: the study's result as text. With one
    seed (std NaN) a cell is `"AUC / logloss (params)"`: no spread is known, none is shown."""

    def value(row: pd.Series, metric: str) -> str:
        std = row[f"{metric}_std"]
        spread = "" if pd.isna(std) else f" ± {std:.4f}"
        return f"{row[f'{metric}_mean']:.4f}{spread}"

    def cell(row: pd.Series) -> str:
        params = int(row["embedding_params"])
        return f"{value(row, 'auc')} / {value(row, 'logloss')} ({params:,})"

    text = points.assign(cell=points.apply(cell, axis=1))
    order = text.groupby("budget")["budget_bytes"].min().sort_values().index
    table = text.pivot(index="budget", columns="layout", values="cell").reindex(order)
    layouts = [layout for layout in LAYOUTS if layout in table.columns]
    return table[layouts].fillna("").reset_index().rename_axis(columns=None)


def paired_deltas(
    runs: pd.DataFrame, layout: str = "unified", baseline: str = "per_feature"
) -> pd.DataFrame:
    """`layout` minus `baseline` per (dataset, budget), paired by seed (same data order).

    Seeds move every layout's AUC together (a bad shuffle hurts both), so the per-seed
    difference is a sharper test than comparing two means. Columns: dataset, budget,
    budget_bytes, seeds, auc_delta_mean, auc_delta_std (ddof=1), auc_wins (seeds where
    `layout` has the higher AUC), logloss_delta_mean (negative = `layout` better).
    """
    keys = ["dataset", "budget", "budget_bytes", "probes", "seed"]
    a = runs[runs["layout"] == layout][[*keys, "auc", "logloss"]]
    b = runs[runs["layout"] == baseline][[*keys, "auc", "logloss"]]
    pairs = a.merge(b, on=keys, suffixes=("_a", "_b"))
    pairs = pairs.assign(
        auc_delta=pairs["auc_a"] - pairs["auc_b"],
        logloss_delta=pairs["logloss_a"] - pairs["logloss_b"],
        win=pairs["auc_a"] > pairs["auc_b"],
    )
    out = (
        pairs.groupby(["dataset", "budget", "budget_bytes"])
        .agg(
            seeds=("seed", "count"),
            auc_delta_mean=("auc_delta", "mean"),
            auc_delta_std=("auc_delta", "std"),
            auc_wins=("win", "sum"),
            logloss_delta_mean=("logloss_delta", "mean"),
        )
        .reset_index()
    )
    return out.sort_values(["dataset", "budget_bytes"], ignore_index=True)
