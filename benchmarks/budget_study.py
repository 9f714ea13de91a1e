"""The embedding-budget study at a chosen size: unified vs per-feature hashing, paired by seed.

The same runs as `notebooks/02_embedding_budget.ipynb` (`evaluation.budget_study`), without
the figures, so a size where the seeds separate the layouts can be run on its own: generated
rows (the learnable config) and/or the shared real samples (a seeded 80/20 split; skipped
when absent), each with its own number of passes. Prints one JSON line: the Pareto table
(budget, layout, AUC and log loss mean ± std over seeds) and the per-seed paired deltas;
`--markdown` adds the tables on stderr.

Run: nice -n 5 .venv/bin/python benchmarks/budget_study.py --datasets generated \\
         --rows 135000 --epochs 2 --budgets 100KB 1MB --seeds 0 1 2
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from unified_embedding.evaluation.budget_study import (
    StudyConfig,
    aggregate,
    paired_deltas,
    pareto_table,
    run_budget_study,
)
from unified_embedding.evaluation.study_data import (
    REAL_SAMPLES,
    GeneratedData,
    StudyData,
    generated_data,
    real_sample,
)
from unified_embedding.training.experiment import TrainConfig


def load(name: str, rows: int, data_dir: str) -> StudyData | None:
    if name == "generated":
        return generated_data(GeneratedData(rows=rows, eval_rows=20_000))
    return real_sample(name, data_dir)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["generated"], choices=["generated", *REAL_SAMPLES]
    )
    parser.add_argument("--rows", type=int, default=135_000, help="generated train rows")
    parser.add_argument("--epochs", type=int, default=2, help="passes over the train rows")
    parser.add_argument("--budgets", nargs="+", default=["100KB", "1MB"])
    parser.add_argument("--layouts", nargs="+", default=["unified", "per_feature"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--markdown", action="store_true", help="the tables on stderr")
    args = parser.parse_args(argv)
    train = TrainConfig(epochs=args.epochs)
    config = StudyConfig(
        budgets=tuple(args.budgets),
        layouts=tuple(args.layouts),
        seeds=tuple(args.seeds),
        train=train,
    )
    started = time.perf_counter()
    out: dict[str, Any] = {}
    for name in args.datasets:
        data = load(name, args.rows, args.data_dir)
        if data is None:
            out[name] = {"skipped": f"no sample under {args.data_dir}"}
            continue
        runs = run_budget_study(data, config, lambda r: print(json.dumps(r), file=sys.stderr))
        points, paired = aggregate(runs), paired_deltas(runs)
        if args.markdown:
            for table in (pareto_table(points), paired):
                print(markdown(table), file=sys.stderr)
        out[name] = {
            "train_rows": len(data.train),
            "eval_rows": len(data.evaluation),
            "ceiling_auc": data.ceiling_auc,
            "points": points.to_dict("records"),
            "paired": paired.to_dict("records"),
        }
    result = {
        "what": "budget_study",
        "epochs": args.epochs,
        "budgets": args.budgets,
        "seeds": args.seeds,
        "datasets": out,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, default=_plain))
    return 0


def markdown(table: pd.DataFrame) -> str:
    rows = [list(table.columns), ["---"] * len(table.columns), *table.astype(str).values.tolist()]
    return "\n".join("| " + " | ".join(map(str, row)) + " |" for row in rows)


def _plain(value: object) -> object:
    """JSON for what `json` does not know (NumPy scalars): their Python value or text."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


if __name__ == "__main__":
    sys.exit(main())
