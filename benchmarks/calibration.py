"""Calibration of `ue train` with the output bias starting at logit(train label rate) against
the baseline starting at 0, on the records of `ue preprocess` directories.

For each data directory and seed, trains `ue train`'s way twice (the baseline first) and reads
the final evaluation of the eval split: calibration (mean predicted / observed CTR), ECE, log
loss and AUC, and the evaluation early stopping kept. Prints one JSON line: per data directory,
both variants' per-seed results and their means.

Run: `.venv/bin/python benchmarks/calibration.py --data prep/criteo prep/lowctr --seeds 0 1`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from unified_embedding.experiment import TrainConfig
from unified_embedding.train import TrainJob, train

METRICS = ("calibration", "ece", "logloss", "auc")
VARIANTS = {"bias_zero": False, "bias_from_label_rate": True}  # the baseline first


def run_once(data: str, seed: int, from_label_rate: bool, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="ue-calibration-") as model_dir:
        job = TrainJob(data, model_dir, budget=args.budget, steps=args.steps,
                       batch_size=args.batch_size, bias_from_label_rate=from_label_rate,
                       optimizer=TrainConfig(seed=seed))  # fmt: skip
        with contextlib.redirect_stdout(sys.stderr):  # fit's progress: stdout keeps one line
            summary = train(job)
    history = summary["val_history"]
    kept = max(range(len(history["val_auc"])), key=history["val_auc"].__getitem__)
    return {
        **{name: summary["eval"][name] for name in METRICS},
        "steps": summary["steps"],
        "kept_evaluation": kept + 1,
        "evaluations": len(history["val_auc"]),
        "val_calibration": [round(c, 3) for c in history["val_calibration"]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", required=True, help="ue preprocess outputs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", default=None, help="as ue train's --budget")
    parser.add_argument("--steps", type=int, default=10_000, help="as ue train's --steps")
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for data in args.data:
        stats = json.loads((Path(data) / "stats.json").read_text())
        entry: dict[str, Any] = {"label_rate": stats["label_rate"],
                                 "eval_positives": stats["positives_by_split"]["eval"]}  # fmt: skip
        for variant, from_label_rate in VARIANTS.items():
            runs = [run_once(data, seed, from_label_rate, args) for seed in args.seeds]
            means = {name: statistics.fmean(r[name] for r in runs) for name in METRICS}
            entry[variant] = {"mean": means, "runs": runs}
        results[Path(data).name] = entry
    print(json.dumps({"what": "ue train calibration: output bias from the label rate vs 0",
                      "seeds": args.seeds, "baseline": "bias_zero", "data": results}))  # fmt: skip


if __name__ == "__main__":
    main()
