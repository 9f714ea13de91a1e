"""The elastic table: one nested (Matryoshka) run served at several table widths and in int8,
against tables of those widths trained on their own and against today's model.

Protocol (benchmarks/quality.py's: its split, budget, recipe and defaults, unified layout):
- Data: the Criteo, Avazu and Frappe samples in `--data-dir` (absent ones are skipped) and
  generated rows (`--generated-rows`, split 90/10 into train and validation, the next quarter
  as test); 80/10/10 train / validation / test for the samples, by `quality.SPLIT_SEED`.
- For each dataset and seed (initialisation and shuffle order; same split, same table rows):
    today    `ue train`'s model with the budget's table (width c = 8), not nested
    nested   the same with `--nested-widths 2,4,8`: one loss per width, averaged each batch
    width m  for each narrower m: a table of width m with the same rows, trained on its own
- The nested model is scored as its exports serve it (`exported.table_format.served_model`,
  which tests/integration/test_elastic_export.py holds equal to the SavedModel), at every width
  in float32 and int8; every model on the held-out test rows (AUC). Table bytes: the shared
  table as served (int8: c + 4 bytes a row, a float16 scale and offset).
- Serving speed (first seed of each dataset): the nested model exported whole in float32 and in
  int8, loaded in this process, the `packed` signature at batch 1 (p50 ms) and at 512 rows
  (rows/s), the two models in alternating rounds; int8 / float32 is the ratio.

Prints one JSON line (the baselines, independent widths, today's model and float32 serving, are
measured in the same run); `--markdown` adds a table on stderr. No samples and no generated rows:
a `skipped` line.

    nice -n 5 .venv/bin/python benchmarks/elastic.py --markdown
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
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

sys.path.insert(0, str(Path(__file__).parent))  # benchmarks/ is not a package
import quality

from unified_embedding.budget.params import BYTES_PER_PARAM
from unified_embedding.budget.plan import plan_budget
from unified_embedding.evaluation.study_data import GeneratedData, generated_data, split_rows
from unified_embedding.exported.model import raw_batches
from unified_embedding.exported.table_format import served_model
from unified_embedding.exported.writer import export
from unified_embedding.layers.unified import UnifiedEmbedding
from unified_embedding.metrics.exact import roc_auc
from unified_embedding.models.autoint import AutoInt
from unified_embedding.training.experiment import encode, predict

WIDTHS = (2, 4, 8)  # nested widths; the last is the table's width c
# The targets: nested at most 0.002 AUC behind a table of its width trained alone, full
# width at most 0.001 behind today's model, int8 within 0.0005 of float32 (every run).
TARGETS = {"nested_vs_independent": -0.002, "full_vs_today": 0.001, "int8_vs_float32": 0.0005}
BATCH_ROWS, ROUNDS, SINGLE_CALLS, BATCHED_CALLS = 512, 5, 200, 10
# Narrow tables trained alone can still gain after the quality protocol's 30 passes (Frappe).
MAX_PASSES = 80


def datasets(names: Sequence[str], data_dir: Path, generated_rows: int) -> Iterator[quality.Split]:
    for name in names:
        if name == "generated":
            if generated_rows:
                data = generated_data(GeneratedData(generated_rows, generated_rows // 4))
                train, validation = split_rows(data.train, 0.1, quality.SPLIT_SEED)
                yield quality.Split(name, data.spec, train, validation, data.evaluation)
        elif (split := quality.split(name, data_dir)) is not None:
            yield split


def table_embedding(data: quality.Split, width: int) -> UnifiedEmbedding:
    """The quality protocol's unified table (its budget at width c), with `width` columns."""
    params = quality.BUDGET_PARAMS.get(data.name, quality.BUDGET_PARAMS["criteo"])
    table = plan_budget(data.spec, params * BYTES_PER_PARAM).table
    assert table.width == WIDTHS[-1], f"{data.name}: the table's width is {table.width}"
    return UnifiedEmbedding(data.spec.replace(table=dataclasses.replace(table, width=width)))


def train(
    data: quality.Split, seed: int, width: int, nested: bool
) -> tuple[AutoInt, dict[str, Any]]:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    candidate = quality.baseline("test")  # `ue train`'s defaults
    if nested:
        model = dataclasses.replace(candidate.model, nested_widths=WIDTHS)
        candidate = dataclasses.replace(candidate, model=model)
    return quality.train_kept(data, candidate, seed, table_embedding(data, width), MAX_PASSES)


def held_out_auc(model: AutoInt, data: quality.Split) -> float:
    return roc_auc(data.test.labels, predict(model, encode(data.spec, data.test), 4096))


def table_bytes(model: AutoInt) -> int:
    """The shared table as `model` holds it (served tables: their own variables)."""
    served = model.embedding.served_tables
    if served:
        return sum(t.nbytes for t in served)
    return sum(int(np.prod(v.shape)) * v.dtype.size for v in model.embedding.tables)


def packed_inputs(data: quality.Split, rows: int) -> dict[str, tf.Tensor]:
    index = np.arange(rows) % len(data.test)  # repeated when the test rows are fewer
    raw = next(iter(raw_batches(data.spec, data.test.take(index), rows)))
    categorical = [raw[f.name] for f in data.spec.categorical_fields]
    numeric = [raw[f.name] for f in data.spec.numeric_fields]
    return {
        "categorical": tf.stack(categorical, 1),
        "numeric": tf.stack(numeric, 1) if numeric else tf.zeros([rows, 0], tf.float32),
    }


def serving_speed(nested: AutoInt, data: quality.Split) -> dict[str, Any]:
    """float32 and int8 exports of the whole table, in alternating rounds."""
    single, batched = packed_inputs(data, 1), packed_inputs(data, BATCH_ROWS)
    latencies: dict[str, list[float]] = {"float32": [], "int8": []}
    rates: dict[str, list[float]] = {"float32": [], "int8": []}
    with tempfile.TemporaryDirectory() as tmp:
        signatures = {}
        for dtype in latencies:
            model, spec = served_model(nested, data.spec, None, dtype)
            version = export(model, spec, Path(tmp) / dtype)
            signatures[dtype] = tf.saved_model.load(str(version)).signatures["packed"]
        for _ in range(ROUNDS):
            for dtype, signature in signatures.items():
                signature(**single), signature(**batched)  # warm
                for _ in range(SINGLE_CALLS):
                    started = time.perf_counter()
                    signature(**single)
                    latencies[dtype].append(time.perf_counter() - started)
                started = time.perf_counter()
                for _ in range(BATCHED_CALLS):
                    signature(**batched)
                rates[dtype].append(BATCHED_CALLS * BATCH_ROWS / (time.perf_counter() - started))
    p50 = {k: float(np.median(v)) * 1e3 for k, v in latencies.items()}
    rate = {k: float(np.median(v)) for k, v in rates.items()}
    return {
        "batch1_p50_ms": {k: round(v, 3) for k, v in p50.items()},
        "batched_rows_per_s": {k: round(v) for k, v in rate.items()},
        "batch1_int8_vs_float32": round(p50["int8"] / p50["float32"], 3),
        "batched_int8_vs_float32": round(rate["int8"] / rate["float32"], 3),
    }


def measure(data: quality.Split, seed: int, speed: bool) -> dict[str, Any]:
    """Today's model, the nested one at every width and dtype, the narrower tables alone."""
    full = WIDTHS[-1]
    run: dict[str, Any] = {"dataset": data.name, "seed": seed, "passes": {}, "seconds": {}}
    auc: dict[str, float] = {}
    table: dict[str, int] = {}
    for name, width, nested in [
        ("today", full, False),
        ("nested", full, True),
        *[(f"independent_{m}", m, False) for m in WIDTHS[:-1]],
    ]:
        model, fit = train(data, seed, width, nested)
        run["passes"][name], run["seconds"][name] = fit["passes"], round(fit["seconds"], 1)
        if not nested:
            auc[name], table[name] = held_out_auc(model, data), table_bytes(model)
            continue
        for m in WIDTHS:
            for dtype in ("float32", "int8"):
                served, _ = served_model(model, data.spec, m, dtype)
                key = f"nested_{m}_{dtype}"
                auc[key], table[key] = held_out_auc(served, data), table_bytes(served)
        if speed:
            run["serving"] = serving_speed(model, data)
    run["auc"] = {k: round(v, 5) for k, v in auc.items()}
    run["table_bytes"] = table
    print(json.dumps(run), file=sys.stderr, flush=True)
    return run


def paired(runs: list[dict[str, Any]], ours: str, theirs: str) -> dict[str, float]:
    """Mean, standard error and minimum of `ours - theirs` AUC over the (dataset, seed) runs."""
    diffs = np.array([r["auc"][ours] - r["auc"][theirs] for r in runs])
    se = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else float("nan")
    return {
        "mean": round(float(diffs.mean()), 5),
        "se": round(se, 5),
        "min": round(float(diffs.min()), 5),
        "max": round(float(diffs.max()), 5),
    }


def share(run: dict[str, Any], key: str) -> float:
    return round(run["table_bytes"][key] / run["table_bytes"]["today"], 4)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per width (a key each): the nested model against its baseline (the table of that width
    trained alone; at full width, today's model) and int8 against float32, paired by run."""
    full = WIDTHS[-1]
    widths = {}
    for m in WIDTHS:
        baseline = "today" if m == full else f"independent_{m}"
        nested = f"nested_{m}_float32"
        widths[str(m)] = {
            "baseline": baseline,
            "nested_auc": round(float(np.mean([r["auc"][nested] for r in runs])), 5),
            "baseline_auc": round(float(np.mean([r["auc"][baseline] for r in runs])), 5),
            "nested_vs_baseline": paired(runs, nested, baseline),
            "int8_vs_float32": paired(runs, f"nested_{m}_int8", nested),
            # of the whole float32 table's bytes (the same share on every dataset)
            "bytes_share": share(runs[0], nested),
            "int8_bytes_share": share(runs[0], f"nested_{m}_int8"),
        }
    narrow = [widths[str(m)]["nested_vs_baseline"]["mean"] for m in WIDTHS[:-1]]
    whole = widths[str(full)]
    full_diff, int8 = whole["nested_vs_baseline"]["mean"], whole["int8_vs_float32"]
    return {
        "widths": widths,
        "targets": {  # thresholds: TARGETS
            "narrow_near_alone": all(d >= TARGETS["nested_vs_independent"] for d in narrow),
            "full_near_today": full_diff >= -TARGETS["full_vs_today"],
            "int8_near_float32": max(abs(int8["min"]), abs(int8["max"]))
            <= TARGETS["int8_vs_float32"],
            "int8_bytes_ratio": round(whole["int8_bytes_share"] / whole["bytes_share"], 4),
        },
    }


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "| width | bytes of the whole table (float32 / int8) | nested AUC | baseline AUC "
        "| nested - baseline "
        "| int8 - float32 (largest) |",
        "|---|---|---|---|---|---|",
    ]
    for width, w in summary["widths"].items():
        d, q = w["nested_vs_baseline"], w["int8_vs_float32"]
        largest = max(abs(q["min"]), abs(q["max"]))
        lines.append(
            f"| {width} | {w['bytes_share']} / {w['int8_bytes_share']} | "
            f"{w['nested_auc']:.4f} | {w['baseline_auc']:.4f} ({w['baseline']}) | "
            f"{d['mean']:+.4f} ± {d['se']:.4f} | {q['mean']:+.5f} ({largest:.5f}) |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data", type=Path)
    parser.add_argument(
        "--datasets", nargs="+", default=[*sorted(quality.BUDGET_PARAMS), "generated"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--generated-rows", type=int, default=40_000, help="0: none")
    parser.add_argument("--markdown", action="store_true", help="a table on stderr")
    args = parser.parse_args(argv)
    splits = list(datasets(args.datasets, args.data_dir, args.generated_rows))
    if not splits:
        print(json.dumps({"what": "elastic", "skipped": f"no samples in {args.data_dir}"}))
        return 0
    started, runs = time.perf_counter(), []
    for data in splits:
        for i, seed in enumerate(args.seeds):
            runs.append(measure(data, seed, speed=i == 0))
    summary = summarise(runs)
    serving = {r["dataset"]: r["serving"] for r in runs if "serving" in r}
    line = {
        "what": "elastic",
        "datasets": {d.name: [len(d.train), len(d.validation), len(d.test)] for d in splits},
        "seeds": args.seeds,
        "nested_widths": list(WIDTHS),
        "loss": "mean over widths, every batch",
        **summary,
        "target_thresholds": TARGETS,
        "serving": serving,
        "runs": runs,
        "seconds": round(time.perf_counter() - started),
    }
    print(json.dumps(line))
    if args.markdown:
        print(markdown(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
