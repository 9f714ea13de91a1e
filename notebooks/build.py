"""Writes the evaluation notebooks from the cell sources below, outputs cleared.

    python notebooks/build.py          # rewrite notebooks/*.ipynb
    python notebooks/build.py --check  # exit 1 if a committed notebook differs (used by tests)

The notebooks are thin: parameters (a cell tagged `parameters`, papermill-style), calls into
`unified_embedding.evaluation`, and figures written as PNG next to a summary JSON. Edit the
sources here, not the .ipynb files, so the committed notebooks never carry outputs. Paths in
parameters are relative to the kernel's working directory: run notebooks from the repo root.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

SETUP = """\
import os

# TFRS needs legacy Keras, set before TensorFlow is imported; PNGs render with Agg.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")"""

QUALITY = [
    (
        "markdown",
        """\
# Model quality of an exported model

For one exported SavedModel and a labelled file: AUC, log loss, calibration (predicted vs
observed CTR by score bucket), score distribution, AUC by slices of one field's values, and
AutoInt's attention averaged over rows (which field pairs interact). Defaults read the output of
`ue demo --workdir demo` (run from the repo root).""",
    ),
    ("code", SETUP),
    (
        "parameters",
        """\
# Paths are relative to the kernel's working directory: run from the repo root, e.g.
#   papermill notebooks/01_model_quality.ipynb out.ipynb -p model_path export/ -p data_path x.csv
model_path = "demo/export/unified"  # an export base (its newest version) or one version folder
data_path = "demo/holdout.tsv"  # labelled rows, plain or .gz/.bz2/.xz
schema = "criteo"  # data_path's format: criteo | avazu | frappe | a schema file | None: the model's
slice_field = "C1"  # a model field: AUC per its most frequent values (per value if multi-valued)
top_values = 10  # slices: that many most frequent values, the other rows as "(other)"
buckets = 10  # calibration buckets of equal row counts (score quantiles)
histogram_bins = 20  # score histogram bins, spread over the scores' own range
attention_rows = 2048  # rows averaged for the attention heatmap
top_pairs_k = 10  # strongest field pairs listed
output_dir = "out/quality"  # figures (PNG) and summary.json (undefined numbers as null)""",
    ),
    (
        "code",
        """\
from pathlib import Path

from IPython.display import Image, display

from unified_embedding.evaluation import attention, plots, quality
from unified_embedding.evaluation.json_report import write_json
from unified_embedding.evaluation.scoring import score_file
from unified_embedding.exported.model import ExportedModel

out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)
model = ExportedModel.load(model_path)
rows, scores = score_file(model, data_path, schema)
metrics = quality.summary_metrics(rows.labels, scores)
print(f"model {model.path}")
metrics""",
    ),
    ("markdown", "## Calibration and score distribution"),
    (
        "code",
        """\
calibration = quality.calibration_table(rows.labels, scores, buckets)
ece = quality.expected_calibration_error(calibration)
plots.save(plots.calibration_figure(calibration, f"Calibration (ECE {ece:.4f})"),
           out / "calibration.png")
histogram = quality.score_histogram(rows.labels, scores, histogram_bins)
plots.save(plots.score_histogram_figure(histogram), out / "scores.png")
display(Image(out / "calibration.png"), Image(out / "scores.png"))
calibration""",
    ),
    ("markdown", "## AUC by value of one field"),
    (
        "code",
        """\
separator = model.spec.field(slice_field).separator  # None unless multi-valued
slices = quality.auc_by_slice(rows.labels, scores, rows.columns[slice_field], top=top_values,
                              separator=separator)
plots.save(plots.slice_auc_figure(slices, slice_field, metrics["auc"],
                                  overlapping=separator is not None), out / "slices.png")
display(Image(out / "slices.png"))
slices""",
    ),
    (
        "markdown",
        """\
## Which field pairs interact

Attention weights `(rows, layers, heads, fields, fields)` from the model's `attention`
signature, averaged over rows, layers and heads; a pair's strength is the mean of both
directions.""",
    ),
    (
        "code",
        """\
weights = attention.model_attention(model, rows, attention_rows)
matrix = attention.mean_attention(weights)
field_names = list(model.spec.field_names)
plots.save(plots.attention_heatmap(matrix, field_names), out / "attention.png")
pairs = attention.top_pairs(matrix, field_names, top_pairs_k)
display(Image(out / "attention.png"))
pairs""",
    ),
    (
        "code",
        """\
summary = {
    "model": model.path,
    "data": str(data_path),
    **metrics,
    "expected_calibration_error": ece,
    "calibration": calibration,
    "score_histogram": histogram,
    "slice_field": slice_field,
    "slices": slices,
    "attention_rows": int(weights.shape[0]),
    "top_pairs": pairs,
    "figures": sorted(p.name for p in out.glob("*.png")),
}
print(f"wrote {write_json(out / 'summary.json', summary)}")""",
    ),
]

BUDGET = [
    (
        "markdown",
        """\
# Embedding budget study: unified vs per-feature hashing vs collision-free

The Unified Embedding paper's Pareto figure on data anyone can regenerate: AutoInt trained with
each embedding layout across parameter budgets, several seeds per point (mean ± std), AUC and
log loss against parameters on a log scale. On generated data the planted model's AUC is the
ceiling. Collision-free tables have one row per distinct training value: their size is set by
the data, not the budget, so they appear once, at their true parameter count. Then a probes
sweep (probes per field at a fixed budget) and the same comparison on real data: your own files
with their schema (see `datasets` below), or the shared samples by name when present.
`make study` runs this with the defaults below.""",
    ),
    ("code", SETUP),
    (
        "parameters",
        """\
# Run from the repo root (paths are relative to it). Lists and mappings from the command line:
# papermill -y 'seeds: [0, 1]' (-p passes them as text).
output_dir = "study"  # figures (PNG), runs.csv and summary.json (undefined numbers as null)
generated = True  # the generated dataset (planted ceiling) and the probes sweep on it
rows = 60_000  # generated training rows (the learnable config: 3 weighted values per field)
eval_rows = 10_000  # generated eval rows, after the training rows
budgets = ["10KB", "30KB", "100KB", "300KB", "1MB"]  # float32 sizes of the embedding tables
layouts = ["unified", "per_feature", "collisionless"]  # collisionless: sized by the data, once
seeds = [0, 1, 2]  # one run per seed at every point: mean ± std over them
probes = [1, 2, 4]  # probes per field in the sweep; each divides the field width (16)
probes_budget = "30KB"  # the sweep's fixed budget
epochs = 1  # passes over the training rows per run
batch_size = 512
num_layers = 3  # AutoInt interacting layers (paper: 3)
# Real data: a list of entries, each a shared sample's name ("criteo", "avazu", "frappe", read
# from `shared_data` when there) or your files with their schema (a built-in name or a schema
# file; `ue schema infer FILE` proposes one), path a file or a glob, plain or .gz/.bz2/.xz:
#   {"name": "mine", "path": "data/day_*.tsv.gz", "schema": "mine.json", "eval_fraction": 0.2}
# (format: unified_embedding/evaluation/dataset_entries.py). Every entry is checked before any
# training: a bad one stops the notebook in one line naming the key and the value.
datasets = ["frappe", "criteo", "avazu"]
shared_data = os.environ.get("UE_SHARED_DATA", "../shared/data")  # "" skips the named samples
real_layouts = ["unified", "per_feature", "collisionless"]  # layouts trained on the real data
real_seeds = [0, 1]  # seeds on the real data
real_rows = 0  # 0: every train row of each dataset; else the first real_rows (small runs)""",
    ),
    (
        "code",
        """\
import time
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from unified_embedding.evaluation import budget_plots, plots
from unified_embedding.evaluation.budget_study import (
    StudyConfig,
    aggregate,
    compare_layouts,
    paired_deltas,
    pareto_table,
    run_budget_study,
    run_probes_sweep,
)
from unified_embedding.evaluation.dataset_entries import dataset_sources, require_lists
from unified_embedding.evaluation.json_report import plain, write_json
from unified_embedding.evaluation.study_data import GeneratedData, generated_data, read_dataset
from unified_embedding.models.autoint import AutoIntConfig
from unified_embedding.training.experiment import TrainConfig

pd.set_option("display.width", 200)
require_lists(budgets=budgets, layouts=layouts, seeds=seeds, probes=probes,
              real_layouts=real_layouts, real_seeds=real_seeds)
sources, skipped = dataset_sources(datasets, shared_data)  # checked now, read after `generated`
out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)
config = StudyConfig(
    budgets=tuple(budgets), layouts=tuple(layouts), seeds=tuple(seeds), probes=tuple(probes),
    probes_budget=probes_budget, train=TrainConfig(batch_size=batch_size, epochs=epochs),
    model=AutoIntConfig(num_layers=num_layers),
)
started = time.perf_counter()


def progress(run: dict) -> None:
    print(f"{run['dataset']:>9} {run['layout']:<13} {run['budget']:>14} probes {run['probes']} "
          f"seed {run['seed']}: auc {run['auc']:.4f} logloss {run['logloss']:.4f} "
          f"params {run['embedding_params']:>9,} ({run['seconds']:.0f} s)", flush=True)""",
    ),
    ("markdown", "## Generated data (skipped when `generated` is False)"),
    (
        "code",
        """\
runs = sweep = pd.DataFrame()
if generated:
    data = generated_data(GeneratedData(rows=rows, eval_rows=eval_rows))
    print(f"{len(data.train):,} train rows, {len(data.evaluation):,} eval rows, "
          f"planted-model AUC (ceiling) {data.ceiling_auc:.4f}")
    runs = run_budget_study(data, config, progress)
    points = aggregate(runs)
    plots.save(budget_plots.pareto_figure(points, data.ceiling_auc, "Generated data"),
               out / "pareto_generated.png")
    display(Image(out / "pareto_generated.png"), pareto_table(points))""",
    ),
    (
        "markdown",
        """\
Unified vs per-feature hashing at equal budgets (AUC delta > 0: unified wins), from the means
and paired by seed (both layouts see the same rows in the same order for a seed):""",
    ),
    (
        "code",
        """\
if generated:
    comparison = compare_layouts(points)
    paired = paired_deltas(runs)
    display(comparison, paired)""",
    ),
    ("markdown", "## Probes per field at a fixed budget (unified layout)"),
    (
        "code",
        """\
if generated:
    sweep = run_probes_sweep(data, config, progress, reuse=runs)
    probe_points = aggregate(sweep)
    plots.save(budget_plots.probes_figure(probe_points, f"Probes per field at {probes_budget}"),
               out / "probes_generated.png")
    display(Image(out / "probes_generated.png"), probe_points)""",
    ),
    ("markdown", "## Real data (`datasets`)"),
    (
        "code",
        """\
for name in skipped:
    print(f"{name}: no sample under {shared_data or '(shared_data empty)'}, skipped")
real = {}
for source in sources:
    sample = read_dataset(source, train_rows=real_rows)
    name = sample.name
    print(f"{name}: {len(sample.train):,} train rows, {len(sample.evaluation):,} eval rows, "
          f"schema {sample.spec.name} ({len(sample.spec.fields)} fields)")
    real_config = StudyConfig(budgets=config.budgets, layouts=tuple(real_layouts),
                              seeds=tuple(real_seeds), train=config.train, model=config.model)
    real_runs = run_budget_study(sample, real_config, progress)
    real_points = aggregate(real_runs)
    plots.save(budget_plots.pareto_figure(real_points, None, name), out / f"pareto_{name}.png")
    display(Image(out / f"pareto_{name}.png"))
    display(pareto_table(real_points))
    real[name] = {"train_rows": len(sample.train), "eval_rows": len(sample.evaluation),
                  "runs": real_runs, "points": real_points,
                  "comparison": compare_layouts(real_points),
                  "paired": paired_deltas(real_runs)}""",
    ),
    (
        "code",
        """\
records = plain  # DataFrame -> JSON records, NaN -> null
all_runs = pd.concat([runs, sweep, *(r["runs"] for r in real.values())], ignore_index=True)
all_runs.drop_duplicates().to_csv(out / "runs.csv", index=False)
summary = {
    "seconds": time.perf_counter() - started,
    "parameters": {"generated": generated, "rows": rows, "eval_rows": eval_rows,
                   "budgets": budgets, "layouts": layouts, "seeds": seeds, "probes": probes,
                   "probes_budget": probes_budget, "epochs": epochs, "batch_size": batch_size,
                   "num_layers": num_layers, "datasets": datasets, "shared_data": shared_data,
                   "real_layouts": real_layouts, "real_seeds": real_seeds,
                   "real_rows": real_rows},
    "generated": {"train_rows": len(data.train), "eval_rows": len(data.evaluation),
                  "ceiling_auc": data.ceiling_auc, "points": records(points),
                  "comparison": records(comparison), "paired": records(paired),
                  "probes": records(probe_points),
                  "table": records(pareto_table(points))} if generated else None,
    "real": {name: {"train_rows": r["train_rows"], "eval_rows": r["eval_rows"],
                    "points": records(r["points"]), "comparison": records(r["comparison"]),
                    "paired": records(r["paired"]),
                    "table": records(pareto_table(r["points"]))}
             for name, r in real.items()},
    "figures": sorted(p.name for p in out.glob("*.png")),
}
write_json(out / "summary.json", summary)
print(f"wrote {out / 'summary.json'} after {summary['seconds']:.0f} s")""",
    ),
]

COMPARE = [
    (
        "markdown",
        """\
# Compare training runs

Reads several `ue train` model directories (`train_summary.json`, TensorBoard logs under
`logs/`) and optional `ue evaluate` JSON files, and tabulates and plots them side by side.
Defaults read the two runs of `ue demo --workdir demo`.""",
    ),
    ("code", SETUP),
    (
        "parameters",
        """\
# Run from the repo root (paths are relative to it).
run_dirs = ["demo/models/unified", "demo/models/per_feature"]  # `ue train --model-dir` folders
eval_files = {}  # run name (its folder's name) -> a JSON file printed by `ue evaluate`
curve_tags = ["epoch_auc", "epoch_logloss"]  # TensorBoard scalar tags plotted per evaluation
curve_split = "validation"  # the TensorBoard folder under each run's logs/: train | validation
output_dir = "out/compare"  # figures (PNG) and summary.json (undefined numbers as null)""",
    ),
    (
        "code",
        """\
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from unified_embedding.evaluation import plots, runs
from unified_embedding.evaluation.json_report import write_json

pd.set_option("display.width", 200)
out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)
summaries = runs.read_summaries(run_dirs)
scalars = pd.concat([runs.read_scalars(Path(d) / "logs", run=Path(d).name) for d in run_dirs],
                    ignore_index=True)
table = summaries.merge(runs.final_scalars(scalars), on="run", how="left")
if eval_files:
    evaluated = runs.read_eval_json(eval_files).add_prefix("evaluate.")
    table = table.merge(evaluated.rename(columns={"evaluate.run": "run"}), on="run", how="left")
table.set_index("run").T""",
    ),
    (
        "code",
        """\
tags = [t for t in curve_tags if t in set(scalars.loc[scalars["split"] == curve_split, "tag"])]
# x-axis: the training step when every run's summary has its eval_every, else the eval index
steps_per_eval = {run: int(every) for run, every in
                  zip(summaries["run"], summaries.get("eval_every", []), strict=False)
                  if pd.notna(every)}
if tags:
    plots.save(plots.run_curves_figure(scalars, tags, curve_split, steps_per_eval),
               out / "curves.png")
    display(Image(out / "curves.png"))
metric_columns = [c for c in ("eval.auc", "eval.logloss", "best_val_auc", "evaluate.auc",
                              "evaluate.logloss") if c in table.columns]
plots.save(plots.run_bars_figure(table, metric_columns), out / "metrics.png")
display(Image(out / "metrics.png"))""",
    ),
    (
        "code",
        """\
summary = {
    "runs": table,
    "scalar_tags": sorted(set(scalars["tag"])),
    "figures": sorted(p.name for p in out.glob("*.png")),
}
print(f"wrote {write_json(out / 'summary.json', summary)}")""",
    ),
]

DAILY = [
    (
        "markdown",
        """\
# Running it every day: frozen, retrained or warm-started, under drift

`benchmarks/daily.py` generates days that drift (new IDs in the high-cardinality fields, a
moving click rate with a jump, planted effects that rotate), trains each day's model three ways
(the day-1 model frozen; retrained from scratch on every day so far; warm-started from the day
before on the new day alone) for each embedding layout, and tests it on the next day's rows.
This notebook runs it (or reads a line it printed) and plots the next-day metrics per day.
`make daily` runs it with the defaults below (about 80 minutes on 2 shared cores; with
`-p rows 16000`, about 25).""",
    ),
    ("code", SETUP),
    (
        "parameters",
        """\
# Run from the repo root (paths are relative to it). Lists: papermill -y 'layouts: [unified]'
output_dir = "out/daily"  # figures (PNG), daily.json (the benchmark's line) and summary.json
result_file = ""  # a file holding the benchmark's JSON line (its last line): "" runs it now
days = 7  # training days; each day's model is tested on the next day's rows
rows = 48_000  # generated rows per day
passes = 6  # passes over each run's rows (a warm start: twice); early stopping may stop sooner
layouts = ["unified", "per_feature", "collisionless"]
extra_args = []  # more flags of benchmarks/daily.py, e.g. ["--ctr-jump-day", "0"]""",
    ),
    (
        "code",
        """\
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from unified_embedding.evaluation import daily_plots, plots
from unified_embedding.evaluation.json_report import write_json

pd.set_option("display.width", 200)
out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)


def run_benchmark() -> dict:
    \"\"\"Runs benchmarks/daily.py, echoing its per-day lines; returns its JSON line.\"\"\"
    command = [sys.executable, "benchmarks/daily.py", "--days", str(days), "--rows", str(rows),
               "--passes", str(passes), "--layouts", *layouts, *map(str, extra_args)]
    print(" ".join(command[1:]), flush=True)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as job:
        output = []
        for line in job.stdout:
            output.append(line)
            if line.startswith('{"layout"'):
                print(line, end="", flush=True)
    if job.returncode != 0:
        raise RuntimeError("benchmarks/daily.py failed:\\n" + "".join(output[-20:]))
    return json.loads([line for line in output if line.startswith('{"benchmark"')][-1])


if result_file:
    lines = Path(result_file).read_text().splitlines()
    line = json.loads([text for text in lines if text.startswith("{")][-1])
else:
    line = run_benchmark()
(out / "daily.json").write_text(json.dumps(line) + "\\n")
table = daily_plots.daily_table(line["results"])
jump_day = line["drift"]["ctr_jump_day"] if line["drift"]["ctr_jump"] else None
print(f"{line['days']} days of {line['rows_per_day']:,} rows; the click rate jumps on day "
      f"{jump_day}; share of next-day rows holding a value unseen on day 1: "
      f"{line['new_id_rows_share']}")
table.pivot_table(index=["layout", "strategy"], columns="test_day", values="auc", sort=False)""",
    ),
    ("markdown", "## Next-day AUC per day, for each strategy and layout"),
    (
        "code",
        """\
figures = {
    "auc.png": daily_plots.next_day_figure(table, "auc", "layout", jump_day),
    "auc_by_strategy.png": daily_plots.next_day_figure(table, "auc", "strategy", jump_day),
    "new_id_auc.png": daily_plots.next_day_figure(table, "new_id_auc", "strategy", jump_day),
    "calibration.png": daily_plots.next_day_figure(table, "calibration", "layout", jump_day),
}
for name, figure in figures.items():
    plots.save(figure, out / name)
    display(Image(out / name))""",
    ),
    ("markdown", "## The summary and the targets"),
    (
        "code",
        """\
summary = {
    key: line.get(key)
    for key in ("warm_vs_retrain_auc", "warm_vs_retrain_seconds",
                "unified_vs_collisionless_new_ids", "calibration_out_of_range", "targets",
                "train_seconds", "seconds")
}
summary["figures"] = sorted(figures)
print(json.dumps({k: summary[k] for k in ("warm_vs_retrain_auc", "warm_vs_retrain_seconds",
                                          "unified_vs_collisionless_new_ids", "targets")},
                 indent=1))
print(f"wrote {write_json(out / 'summary.json', summary)}")""",
    ),
]

ELASTIC = [
    (
        "markdown",
        """\
# One table, several sizes: nested widths and int8 tables

`benchmarks/elastic.py` trains one nested (Matryoshka) model per dataset and seed
(`ue train --nested-widths 2,4,8`), serves it at every table width in float32 and int8 (as
`ue export --table-width --table-dtype` writes it), and trains a table of each narrower width on
its own, plus today's model. This notebook runs it (or reads a line it printed) and plots the
test AUC against the bytes of the table served: the Pareto front a deployment size is picked
from. With the defaults it takes about an hour on 2 shared cores.""",
    ),
    ("code", SETUP),
    (
        "parameters",
        """\
# Run from the repo root (paths are relative to it). Lists: papermill -y 'seeds: [0]'
output_dir = "out/elastic"  # pareto.png, elastic.json (the benchmark's line), summary.json
result_file = ""  # a file holding the benchmark's JSON line (its last line): "" runs it now
datasets = ["avazu", "criteo", "frappe", "generated"]  # samples absent from data_dir are skipped
data_dir = "../shared/data"
seeds = [0, 1, 2]
generated_rows = 40_000""",
    ),
    (
        "code",
        """\
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

from unified_embedding.evaluation import elastic_plots, plots
from unified_embedding.evaluation.json_report import write_json

pd.set_option("display.width", 200)
out = Path(output_dir)
out.mkdir(parents=True, exist_ok=True)

if result_file:
    lines = Path(result_file).read_text().splitlines()
    line = json.loads([text for text in lines if text.startswith("{")][-1])
else:
    command = [sys.executable, "benchmarks/elastic.py", "--datasets", *datasets,
               "--data-dir", data_dir, "--seeds", *map(str, seeds),
               "--generated-rows", str(generated_rows)]
    print(" ".join(command[1:]), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError("benchmarks/elastic.py failed:\\n" + done.stderr[-3000:])
    line = json.loads(done.stdout.splitlines()[-1])
(out / "elastic.json").write_text(json.dumps(line) + "\\n")
if "skipped" in line:
    raise RuntimeError(f"the benchmark measured nothing: {line['skipped']}")
table = elastic_plots.elastic_table(line["runs"], line["nested_widths"][-1])
table.pivot_table(index=["dataset", "width"], columns="model", values="auc", sort=False)""",
    ),
    ("markdown", "## Test AUC against the served table's bytes"),
    (
        "code",
        """\
plots.save(elastic_plots.pareto_figure(table), out / "pareto.png")
display(Image(out / "pareto.png"))""",
    ),
    ("markdown", "## Per width: nested against trained alone, int8 against float32; targets"),
    (
        "code",
        """\
widths = pd.DataFrame(
    [{"width": width, "baseline": w["baseline"],
      "nested - baseline": w["nested_vs_baseline"]["mean"],
      "standard error": w["nested_vs_baseline"]["se"],
      "int8 - float32": w["int8_vs_float32"]["mean"],
      "bytes share": w["bytes_share"], "int8 bytes share": w["int8_bytes_share"]}
     for width, w in line["widths"].items()]
)
display(widths)
summary = {
    "targets": line["targets"],
    "serving": line["serving"],
    "points": table,
    "pareto": {d: elastic_plots.pareto_front(table[table["dataset"] == d])[["model", "width"]]
                  .to_dict("records") for d in table["dataset"].unique()},
    "figures": ["pareto.png"],
}
print(json.dumps(line["targets"], indent=1))
print(f"wrote {write_json(out / 'summary.json', summary)}")""",
    ),
]

NOTEBOOKS = {
    "01_model_quality.ipynb": QUALITY,
    "02_embedding_budget.ipynb": BUDGET,
    "03_compare_runs.ipynb": COMPARE,
    "04_daily.ipynb": DAILY,
    "05_elastic_table.ipynb": ELASTIC,
}


def build(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """A notebook of `cells` with stable ids and no outputs."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for index, (kind, source) in enumerate(cells):
        cell_id = f"cell-{index:02d}"
        if kind == "markdown":
            notebook.cells.append(nbformat.v4.new_markdown_cell(source, id=cell_id))
        else:
            tags = {"tags": ["parameters"]} if kind == "parameters" else {}
            notebook.cells.append(nbformat.v4.new_code_cell(source, id=cell_id, metadata=tags))
    nbformat.validate(notebook)
    return notebook


def render(cells: list[tuple[str, str]]) -> str:
    return nbformat.writes(build(cells)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a notebook is stale")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path, text = HERE / name, render(cells)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale notebooks (run python notebooks/build.py): {stale}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
