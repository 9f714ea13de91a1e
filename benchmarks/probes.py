"""AUC of the no-budget table rule and of multi-size probes (`--probes auto`), per dataset.

Two studies on the same rows, each point trained once per seed (AutoInt, unified layout, in
memory through `experiment.train_and_evaluate`, `--epochs` passes) and scored on a fixed seeded
20% carve-out of the sample's own rows (the shared samples are training rows; no test set is
read). Distinct counts come from the train part only.

  --study budget  the table from `budget.data_budget` (the default rule; `--per-value`: other
                  parameters per distinct value, without the floor) vs the old 2 MiB table vs a
                  tenth of the peers' embedding parameters (Criteo and Avazu 64.6k, Frappe 8.5k).
  --study probes  at each of `--budgets`: fixed 2 probes (the baseline) vs auto probes capped at
                  2 (what default records allow) and at 4 (`ue preprocess --probes 4`). Auto
                  pays a projection per field whose probes x width != embedding_dim from the
                  same budget; a point whose projections leave no table is listed as skipped.

Prints one JSON line: every run, and per point the mean and spread (max - min) over seeds.
Run: `.venv/bin/python benchmarks/probes.py --study probes --datasets criteo,frappe,generated`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from unified_embedding.budget.params import BYTES_PER_PARAM
from unified_embedding.budget.plan import (
    data_budget,
    parse_budget,
    plan_budget,
)
from unified_embedding.budget.probes import with_probes
from unified_embedding.contract.spec import FeatureSpec, SpecError
from unified_embedding.evaluation.study_data import (
    GeneratedData,
    StudyData,
    generated_data,
    real_sample,
)
from unified_embedding.training.experiment import TrainConfig, distinct_values, train_and_evaluate

# A tenth of the peers' embedding parameters (issue 14): a 16-wide row per distinct value.
PEERS_TENTH_PARAMS = {"criteo": 64_600, "avazu": 64_600, "frappe": 8_500, "generated": 64_600}
OLD_DEFAULT = "2MiB"


def load(name: str, data_dir: Path, generated_rows: int) -> StudyData:
    if name == "generated":
        return generated_data(GeneratedData(rows=generated_rows, eval_rows=generated_rows // 4))
    data = real_sample(name, data_dir, eval_fraction=0.2, seed=0)
    if data is None:
        raise FileNotFoundError(f"no {name} sample under `--data-dir {data_dir}`")
    return data


def train_point(
    data: StudyData, spec: FeatureSpec, budget_bytes: int, epochs: int, seed: int
) -> dict[str, Any]:
    config = TrainConfig(epochs=epochs, seed=seed)
    _, result = train_and_evaluate(
        spec, "unified", data.train, data.evaluation, budget_bytes, train_config=config
    )
    tf.keras.backend.clear_session()
    return {
        "auc": round(result.auc, 4),
        "logloss": round(result.logloss, 4),
        "embedding_params": result.embedding_params,
    }


def budget_points(
    data: StudyData, distinct: dict[str, int], per_value: Sequence[float], baselines: bool
) -> list[tuple[str, FeatureSpec, int]]:
    spec = data.spec
    points = [("data rule (default)", spec, data_budget(spec, distinct))]
    points += [(f"{v:g}/value", spec, data_budget(spec, distinct, v, 1)) for v in per_value]
    if baselines:
        points.append((f"old {OLD_DEFAULT}", spec, parse_budget(OLD_DEFAULT)))
        points.append(("peers/10", spec, PEERS_TENTH_PARAMS[data.name] * BYTES_PER_PARAM))
    return points


def probes_points(
    data: StudyData, distinct: dict[str, int], budgets: Sequence[str]
) -> list[tuple[str, FeatureSpec, int]]:
    recorded2, recorded4 = (with_probes(data.spec, k) for k in (2, 4))
    points = []
    for budget in budgets:
        size = parse_budget(budget)
        points.append((f"fixed 2 @ {budget}", recorded2, size))
        for recorded in (recorded2, recorded4):
            auto = with_probes(recorded, "auto", distinct, recorded=recorded)
            cap = recorded.categorical_fields[0].probes
            points.append((f"auto<={cap} @ {budget}", auto, size))
    return points


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for key in dict.fromkeys((r["dataset"], r["point"]) for r in runs):
        aucs = [r["auc"] for r in runs if (r["dataset"], r["point"]) == key]
        out.append(
            {
                "dataset": key[0],
                "point": key[1],
                "auc_mean": round(float(np.mean(aucs)), 4),
                "auc_spread": round(max(aucs) - min(aucs), 4),
                "seeds": len(aucs),
            }
        )
    return out


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", choices=["budget", "probes"], required=True)
    parser.add_argument("--datasets", default="criteo,frappe,generated")
    parser.add_argument("--data-dir", default="../shared/data", type=Path)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--budgets", default="20KB,80KB,320KB", help="the probes study's")
    parser.add_argument(
        "--per-value", default="", help="budget study: more parameters-per-value rules, no floor"
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="budget study: only the --per-value rules"
    )
    parser.add_argument("--generated-rows", type=int, default=40_000)
    args = parser.parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    seeds = [int(s) for s in args.seeds.split(",")]
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    started = time.perf_counter()
    for name in args.datasets.split(","):
        data = load(name, args.data_dir, args.generated_rows)
        distinct = {k: len(v) for k, v in distinct_values(data.train, data.spec).items()}
        if args.study == "budget":
            per_value = [float(v) for v in args.per_value.split(",") if v]
            points = budget_points(data, distinct, per_value, not args.no_baselines)
        else:
            points = probes_points(data, distinct, args.budgets.split(","))
        for label, spec, budget_bytes in points:
            try:
                plan_budget(spec, budget_bytes)
            except SpecError as e:  # auto's projections can exceed a small budget
                skipped.append({"dataset": name, "point": label, "reason": str(e)})
                continue
            for seed in seeds:
                run = train_point(data, spec, budget_bytes, args.epochs, seed)
                runs.append(
                    {
                        "dataset": name,
                        "point": label,
                        "budget_bytes": budget_bytes,
                        "probes": [f.probes for f in spec.categorical_fields],
                        "seed": seed,
                        **run,
                    }
                )
                print(json.dumps(runs[-1]), file=sys.stderr)  # progress, for a person
    result = {
        "benchmark": "probes",
        "study": args.study,
        "epochs": args.epochs,
        "seeds": seeds,
        "summary": summarize(runs),
        "skipped": skipped,
        "runs": runs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
