"""The quality protocol: defaults chosen on a validation carve-out, figures on held-out rows.

The protocol, fixed before the sweep (benchmarks/RESULTS.md, "Quality vs peers"):

1. Data: the shared samples in `../shared/data` (criteo, avazu, frappe; see their README).
   Absent folder: the script prints a `skipped` JSON line and exits 0.
2. Split, once per dataset by a fixed seed (`SPLIT_SEED`), at random by row:
   80% train, 10% validation carve-out, 10% held-out test (`split`).
3. Budget: one tenth of the peers' embedding parameters (`BUDGET_PARAMS`: Criteo and Avazu
   64.6k, Frappe 8.5k floats; a parameter is one float32 of the embedding block, so the
   budget is `params x 4` bytes), unified layout.
4. Training is `ue train`'s recipe in memory: its model code, optimizers and precision (`auto`),
   batch 512, one evaluation per pass over the train rows, early stopping on validation AUC
   with patience 3 and the best pass's weights kept; the output bias starts at the logit of
   the train label rate and is re-fit on the train rows after training (`fit`); learning
   rates x `plateau_decay` after a pass without validation-AUC gain (`DecayOnPlateau`).
5. Defaults are chosen with `--stage sweep`: the grid varies one factor at a time from
   the previous defaults (`grid`), 2 seeds, scored on the validation carve-out ONLY; a factor
   is adopted when its mean validation-AUC gain over the previous defaults, paired by dataset
   and seed, is larger than its standard error (`rank`). Round 1 (`--start paper`) started
   from the paper's AutoInt; round 2 (`--start adopted`) from round 1's adopted defaults.
6. Figures (`--stage test`): the chosen defaults, 3 seeds (initialisation and shuffle
   order; same split), AUC, logloss and calibration (mean predicted / observed CTR) on the
   held-out test rows, mean and sample std. The test rows are never read by the sweep.

Run (prints one JSON line; `--markdown` adds a table on stderr):
    nice -n 5 .venv/bin/python benchmarks/quality.py --stage sweep
    nice -n 5 .venv/bin/python benchmarks/quality.py --stage sweep --start adopted \
        --seeds 0 1 2 --candidates defaults "plateau decay 0.2"
    nice -n 5 .venv/bin/python benchmarks/quality.py --stage test --markdown
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from unified_embedding.budget.params import BYTES_PER_PARAM
from unified_embedding.budget.plan import plan_budget
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.evaluation.quality import calibration_table, expected_calibration_error
from unified_embedding.evaluation.study_data import REAL_SAMPLES, split_rows
from unified_embedding.metrics.exact import log_loss, roc_auc
from unified_embedding.models.autoint import (
    DEFAULT_TRAIN_MODEL,
    AutoInt,
    AutoIntConfig,
    build_autoint,
    output_bias_for,
)
from unified_embedding.rows.reader import RawRows, read_rows
from unified_embedding.training.callbacks import DecayOnPlateau
from unified_embedding.training.experiment import (
    TrainConfig,
    build_embedding,
    encode,
    make_optimizer,
    predict,
)
from unified_embedding.training.job import PLATEAU_DECAY
from unified_embedding.training.precision import resolve_precision
from unified_embedding.training.recalibrate import refit_output_bias

SPLIT_SEED = 14  # the number; fixed before any run
BUDGET_PARAMS = {"criteo": 64_600, "avazu": 64_600, "frappe": 8_500}  # 1/10 of the peers'
PEER_AUC = {"criteo": 0.7184, "frappe": 0.9393}  # best peer, on the peers' own test rows
BATCH_SIZE, PATIENCE, MAX_PASSES = 512, 3, 30  # `ue train`'s batch and patience


@dataclass(frozen=True)
class Split:
    """One dataset's rows, split once by `SPLIT_SEED`."""

    name: str
    spec: FeatureSpec
    train: RawRows
    validation: RawRows
    test: RawRows


@dataclass(frozen=True)
class Candidate:
    """One point of the grid: a model and its optimisation settings."""

    name: str
    model: AutoIntConfig
    train: TrainConfig
    plateau_decay: float = 1.0  # `ue train --plateau-decay`; 1: off


def split(name: str, data_dir: Path) -> Split | None:
    """80 / 10 / 10 train / validation / test by a seeded permutation; None when absent."""
    path = data_dir / REAL_SAMPLES[name]
    if not path.is_file():
        return None
    spec = load_schema(name)
    train, rest = split_rows(read_rows(spec, path), 0.2, SPLIT_SEED)
    validation, test = split_rows(rest, 0.5, SPLIT_SEED)
    return Split(name, spec, train, validation, test)


def baseline(stage: str, start: str = "paper") -> Candidate:
    """The sweep's first round (`start="paper"`) starts from the defaults before it (the
    paper's AutoInt, Adam 5e-3, table Adagrad 0.5); its second (`"adopted"`) from the first
    round's adopted defaults (`DEFAULT_TRAIN_MODEL`, `TrainConfig()`) without a learning-rate
    decay; the test measures `ue train`'s defaults (those plus `PLATEAU_DECAY`)."""
    if stage == "test":
        model, train, decay = DEFAULT_TRAIN_MODEL, TrainConfig(), PLATEAU_DECAY
    elif start == "adopted":
        model, train, decay = DEFAULT_TRAIN_MODEL, TrainConfig(), 1.0
    else:
        model, train = AutoIntConfig(), TrainConfig(learning_rate=5e-3, table_learning_rate=0.5)
        decay = 1.0
    model = dataclasses.replace(model, precision=resolve_precision("auto"))
    return Candidate("defaults", model, train, decay)


def grid(base: Candidate) -> list[Candidate]:
    """One factor at a time from `base`: model (AutoInt / AutoInt+ and its dropout), dense and
    table learning rates x {0.5, 2}, decoupled weight decay on the table, learning rates x 0.2
    after an evaluation without gain (`DecayOnPlateau`)."""
    model, train = base.model, base.train

    def vary(name: str, plateau_decay: float = base.plateau_decay, **changes: Any) -> Candidate:
        model_changes = {k: v for k, v in changes.items() if k in ("dnn_units", "dropout")}
        train_changes = {k: v for k, v in changes.items() if k not in model_changes}
        return Candidate(
            name,
            dataclasses.replace(model, **model_changes),
            dataclasses.replace(train, **train_changes),
            plateau_decay,
        )

    plus = (256, 256)
    return [
        base,
        vary("autoint+", dnn_units=plus, dropout=0.0),
        vary("autoint+ dropout 0.1", dnn_units=plus, dropout=0.1),
        vary("autoint+ dropout 0.2", dnn_units=plus, dropout=0.2),
        vary("lr x0.5", learning_rate=train.learning_rate * 0.5),
        vary("lr x2", learning_rate=train.learning_rate * 2),
        vary("table lr x0.5", table_learning_rate=train.table_learning_rate * 0.5),
        vary("table lr x2", table_learning_rate=train.table_learning_rate * 2),
        vary("table decay 1e-3", table_weight_decay=1e-3),
        vary("plateau decay 0.2", plateau_decay=0.2),
    ]


def fit(data: Split, candidate: Candidate, seed: int, score_on: RawRows) -> dict[str, Any]:
    """`ue train`'s recipe on `data.train`, early stopping on `data.validation`; metrics of
    the kept weights on `score_on`."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    budget = BUDGET_PARAMS[data.name] * BYTES_PER_PARAM
    embedding = build_embedding("unified", data.spec, plan_budget(data.spec, budget))
    model, run = train_kept(data, candidate, seed, embedding)
    seconds = run.pop("seconds")
    scores = predict(model, encode(data.spec, score_on), 4096)
    labels = score_on.labels
    return {
        "dataset": data.name,
        "candidate": candidate.name,
        "seed": seed,
        "embedding_params": int(embedding.count_params()),
        **run,
        "auc": roc_auc(labels, scores),
        "logloss": log_loss(labels, scores),
        "calibration": float(scores.mean() / labels.mean()),
        "ece": expected_calibration_error(calibration_table(labels, scores)),
        "seconds": round(seconds, 1),
    }


def train_kept(
    data: Split,
    candidate: Candidate,
    seed: int,
    embedding: keras.layers.Layer,
    max_passes: int = MAX_PASSES,
) -> tuple[AutoInt, dict[str, Any]]:
    """AutoInt over `embedding` trained by `ue train`'s recipe (the caller seeds first); the
    kept (best validation AUC) weights, and {passes, best_pass, seconds}."""
    # As `ue train`: the output bias starts at the logit of the training label rate.
    bias = output_bias_for(float(data.train.labels.mean()))
    model = build_autoint(embedding, dataclasses.replace(candidate.model, output_bias=bias))
    rows = tf.data.Dataset.from_tensor_slices(encode(data.spec, data.train))
    train_set = (
        rows.shuffle(len(data.train), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH_SIZE)
        .prefetch(tf.data.AUTOTUNE)
    )
    validation = tf.data.Dataset.from_tensor_slices(encode(data.spec, data.validation))
    model(next(iter(train_set)))  # every variable, before the optimizers split them
    model.compile(
        optimizer=make_optimizer(model, dataclasses.replace(candidate.train, seed=seed), "unified")
    )
    stop = keras.callbacks.EarlyStopping(
        "val_auc", mode="max", patience=PATIENCE, restore_best_weights=True
    )
    started = time.perf_counter()
    decay = DecayOnPlateau(candidate.plateau_decay)  # after `stop`, as in `ue train`
    history = model.fit(
        train_set,
        epochs=max_passes,
        validation_data=validation.batch(4096),
        callbacks=[stop, decay],
        verbose=0,
    )
    refit_output_bias(model, rows.batch(4096))  # as `ue train`, on the train rows only
    val_auc = history.history["val_auc"]
    best = int(np.argmax(val_auc))
    if best != len(val_auc) - 1 and stop.stopped_epoch == 0:  # ran out of passes
        raise RuntimeError(f"{data.name}: no early stop in {max_passes} passes; raise them")
    seconds = time.perf_counter() - started
    return model, {"passes": len(val_auc), "best_pass": best + 1, "seconds": seconds}


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample std over seeds per (dataset, candidate)."""
    keys = sorted({(r["dataset"], r["candidate"]) for r in runs}, key=lambda k: (k[0], k[1]))
    out = []
    for dataset, name in keys:
        group = [r for r in runs if (r["dataset"], r["candidate"]) == (dataset, name)]
        row: dict[str, Any] = {
            "dataset": dataset,
            "candidate": name,
            "seeds": len(group),
            "embedding_params": group[0]["embedding_params"],
        }
        for metric in ("auc", "logloss", "calibration", "ece", "best_pass"):
            values = np.array([r[metric] for r in group], dtype=np.float64)
            row[f"{metric}_mean"] = round(float(values.mean()), 4)
            row[f"{metric}_std"] = round(float(values.std(ddof=1)), 4) if len(group) > 1 else None
        if dataset in PEER_AUC:
            row["peer_auc"] = PEER_AUC[dataset]
        out.append(row)
    return out


def rank(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep's decision rule. A candidate's gain is its validation AUC minus the defaults'
    on the same dataset and seed (the same rows in the same order); it is adopted when the
    mean gain over those (dataset, seed) pairs exceeds its standard error (sample std /
    sqrt(pairs)). Best mean gain first; per-dataset mean gains listed."""
    base = {(r["dataset"], r["seed"]): r["auc"] for r in runs if r["candidate"] == "defaults"}
    scored = []
    for name in sorted({r["candidate"] for r in runs} - {"defaults"}):
        pairs = [
            (r["dataset"], r["auc"] - base[r["dataset"], r["seed"]])
            for r in runs
            if r["candidate"] == name and (r["dataset"], r["seed"]) in base
        ]
        if not pairs:
            continue
        gains = np.array([g for _, g in pairs])
        error = float(gains.std(ddof=1) / math.sqrt(gains.size)) if gains.size > 1 else math.nan
        by_dataset = {
            d: round(float(np.mean([g for e, g in pairs if e == d])), 4)
            for d in sorted({d for d, _ in pairs})
        }
        scored.append(
            {
                "candidate": name,
                "pairs": int(gains.size),
                "mean_auc_gain": round(float(gains.mean()), 4),
                "standard_error": round(error, 4),
                "adopted": bool(gains.mean() > error),
                "gains": by_dataset,
            }
        )
    return sorted(scored, key=lambda s: -s["mean_auc_gain"])


def markdown(summary: list[dict[str, Any]]) -> str:
    lines = [
        "| dataset | candidate | params | AUC | logloss | calibration | ECE | peer AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pm(row: dict[str, Any], metric: str) -> str:
        std = row[f"{metric}_std"]
        return f"{row[f'{metric}_mean']:.4f}" + ("" if std is None else f" ± {std:.4f}")

    for row in summary:
        lines.append(
            f"| {row['dataset']} | {row['candidate']} | {row['embedding_params']:,} | "
            f"{pm(row, 'auc')} | {pm(row, 'logloss')} | {pm(row, 'calibration')} | "
            f"{pm(row, 'ece')} | {row.get('peer_auc', '')} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=["sweep", "test"], required=True)
    parser.add_argument("--data-dir", default="../shared/data", type=Path)
    parser.add_argument("--datasets", nargs="+", default=sorted(BUDGET_PARAMS))
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="default: 0 1 for the sweep, 0 1 2 for the test",
    )
    parser.add_argument(
        "--candidates",
        nargs="*",
        default=None,
        help="sweep: a subset of the grid's names (default: all)",
    )
    parser.add_argument(
        "--start",
        choices=["paper", "adopted"],
        default="paper",
        help="sweep: from the defaults before the first round (paper) or from "
        "its adopted ones (the second round)",
    )
    parser.add_argument("--markdown", action="store_true", help="a table on stderr")
    parser.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        default=None,
        help="summarise the run lines earlier invocations logged on stderr, "
        "without training (runs split across processes)",
    )
    args = parser.parse_args(argv)
    if args.runs:
        return report(args, read_runs(args.runs), 0.0)
    splits = [s for s in (split(name, args.data_dir) for name in args.datasets) if s]
    if not splits:
        print(json.dumps({"what": "quality", "skipped": f"no samples in {args.data_dir}"}))
        return 0
    base = baseline(args.stage, args.start)
    seeds = args.seeds or ([0, 1] if args.stage == "sweep" else [0, 1, 2])
    candidates = [base] if args.stage == "test" else grid(base)
    if args.candidates:
        candidates = [c for c in candidates if c.name in args.candidates]
    started, runs = time.perf_counter(), []
    for data in splits:
        score_on = data.validation if args.stage == "sweep" else data.test
        for candidate in candidates:
            for seed in seeds:
                runs.append(
                    {
                        **fit(data, candidate, seed, score_on),
                        "rows": [len(data.train), len(data.validation), len(data.test)],
                    }
                )
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    return report(args, runs, time.perf_counter() - started)


def read_runs(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The run records (JSON lines with a `candidate`) in `paths`, the last of each
    (dataset, candidate, seed) kept."""
    runs = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if line.startswith("{") and '"candidate"' in line:
                run = json.loads(line)
                runs[(run["dataset"], run["candidate"], run["seed"])] = run
    return list(runs.values())


def report(args: argparse.Namespace, runs: list[dict[str, Any]], seconds: float) -> int:
    """The one JSON line (and the Markdown table) of `runs`."""
    summary = summarise(runs)
    base = baseline(args.stage, args.start)
    result = {
        "what": "quality",
        "stage": args.stage,
        "scored_on": "validation" if args.stage == "sweep" else "test",
        "split": {"seed": SPLIT_SEED, "train": 0.8, "validation": 0.1, "test": 0.1},
        "rows": {r["dataset"]: r.get("rows") for r in runs},
        "model": dataclasses.asdict(base.model),
        "train": dataclasses.asdict(base.train),
        "plateau_decay": base.plateau_decay,
        "seeds": sorted({r["seed"] for r in runs}),
        "summary": summary,
        "ranking": rank(runs) if args.stage == "sweep" else None,
        "seconds": round(seconds, 1),
    }
    if args.markdown:
        print(markdown(summary), file=sys.stderr)
    print(json.dumps(result))
    return 0 if all(math.isfinite(r["auc"]) for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
