"""Calibration of `ue train` with the output bias starting at logit(train label rate), and
re-fit on the train rows after training, against the baseline starting at 0 (no re-fit), on
the records of `ue preprocess` directories.

For each data directory and seed, trains `ue train`'s way per variant (the baseline first), reads
the final evaluation of the eval split: calibration (mean predicted / observed CTR), ECE, log
loss and AUC, and the evaluation early stopping kept. Prints one JSON line: per data directory,
each variant's per-seed results and their means.

Run: `.venv/bin/python benchmarks/calibration.py --data prep/criteo prep/lowctr --seeds 0 1`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from unified_embedding.training.experiment import TrainConfig
from unified_embedding.training.loop import TrainJob, train

METRICS = ("calibration", "ece", "logloss", "auc")
# (output bias from the label rate, re-fit on the train rows after training); the baseline first
VARIANTS = {
    "bias_zero": (False, False),
    "bias_init": (True, False),
    "bias_init_refit": (True, True),
}


def run_once(
    data: str, seed: int, variant: tuple[bool, bool], args: argparse.Namespace
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ue-calibration-") as model_dir:
        job = TrainJob(
            data,
            model_dir,
            budget=args.budget,
            steps=args.steps,
            eval_every=args.eval_every,
            batch_size=args.batch_size,
            bias_from_label_rate=variant[0],
            refit_output_bias=variant[1],
            optimizer=TrainConfig(seed=seed),
        )
        with contextlib.redirect_stdout(sys.stderr):  # fit's progress: stdout keeps one line
            summary = train(job)
    history = summary["val_history"]
    kept = max(range(len(history["val_auc"])), key=history["val_auc"].__getitem__)
    return {
        **{name: summary["eval"][name] for name in METRICS},
        "steps": summary["steps"],
        "output_bias_shift": summary["output_bias_shift"],
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
    parser.add_argument("--eval-every", type=int, default=None, help="as ue train's")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for data in args.data:
        stats = json.loads((Path(data) / "stats.json").read_text())
        entry: dict[str, Any] = {
            "label_rate": stats["label_rate"],
            "eval_positives": stats["positives_by_split"]["eval"],
        }
        for name, variant in VARIANTS.items():
            if name not in args.variants:
                continue
            runs = [run_once(data, seed, variant, args) for seed in args.seeds]
            means = {name: statistics.fmean(r[name] for r in runs) for name in METRICS}
            entry[name] = {"mean": means, "runs": runs}
        results[Path(data).name] = entry
    print(
        json.dumps(
            {
                "what": "ue train calibration: output bias from the label rate vs 0",
                "seeds": args.seeds,
                "steps": args.steps,
                "eval_every": args.eval_every,
                "baseline": "bias_zero",
                "data": results,
            }
        )
    )


if __name__ == "__main__":
    main()
