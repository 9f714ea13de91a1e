"""The evaluation notebooks run end to end on small generated data and write sane outputs.

Each notebook is executed by papermill in a `python3` kernel (this interpreter: the test checks)
with small parameters; the defaults stay the real study. Committed notebooks carry no outputs
and equal what `notebooks/build.py` writes.
"""

import gzip
import json
import math
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from pipelines.preprocess import run as preprocess
from unified_embedding.exported.writer import export
from unified_embedding.models.autoint import AutoIntConfig
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.loop import TrainJob, load_trained, train

papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SHARED_DATA = REPO.parent / "shared" / "data"
CONFIG = SyntheticConfig(seed=5, weighted_top_k=3, signal_scale=2.0)
PNG = b"\x89PNG\r\n\x1a\n"


def strict_json(text: str) -> dict:
    """JSON as strict parsers read it: a bare NaN or Infinity is an error, not a number."""

    def refuse(constant: str) -> None:
        raise ValueError(f"summary.json holds a bare {constant}")

    return json.loads(text, parse_constant=refuse)


def execute(name: str, out: Path, **parameters: object) -> dict:
    """Runs notebook `name` from the repo root with `parameters` (`output_dir=out`) and keeps
    the executed copy in `out`; returns the summary JSON it wrote (strict: null, never NaN)."""
    out.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(NOTEBOOKS / name),
        str(out / name),
        parameters={**parameters, "output_dir": str(out)},
        kernel_name="python3",
        cwd=str(REPO),
        progress_bar=False,
    )
    return strict_json((out / "summary.json").read_text())


def assert_pngs(output_dir: Path, names: list[str]) -> None:
    for name in names:
        assert (output_dir / name).read_bytes()[:8] == PNG, name


def test_committed_notebooks_have_no_outputs_and_match_the_builder() -> None:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name for p in paths] == [
        "01_model_quality.ipynb",
        "02_embedding_budget.ipynb",
        "03_compare_runs.ipynb",
        "04_daily.ipynb",
        "05_elastic_table.ipynb",
    ]
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(c.outputs == [] and c.execution_count is None for c in code), path.name
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: one cell tagged `parameters`"
    sys.path.insert(0, str(NOTEBOOKS))
    try:
        import build
    finally:
        sys.path.remove(str(NOTEBOOKS))
    assert build.main(["--check"]) == 0, "run `python notebooks/build.py`"


def test_notebook_kernel_is_this_interpreter_and_sees_this_checkout(tmp_path: Path) -> None:
    import nbclient

    notebook = nbformat.v4.new_notebook()
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            "import sys, unified_embedding; print(sys.prefix); print(unified_embedding.__file__)"
        )
    )
    nbclient.NotebookClient(
        notebook, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    prefix, package = notebook.cells[0].outputs[0]["text"].split()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve()
    assert Path(package).resolve().parent == (REPO / "unified_embedding").resolve()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `ue demo --workdir W` leaves, in small: records, two trained runs, one export and
    labelled held-out rows."""
    root = tmp_path_factory.mktemp("demo")
    (root / "rows.tsv").write_bytes(generate(3000, CONFIG).to_tsv_bytes())
    (root / "holdout.tsv").write_bytes(generate(1500, CONFIG, start_row=3000).to_tsv_bytes())
    preprocess(
        [
            "--input",
            str(root / "rows.tsv"),
            "--schema",
            "criteo",
            "--output",
            str(root / "prep"),
            "--eval-fraction",
            "0.2",
        ]
    )
    for layout in ("unified", "per_feature"):
        job = TrainJob(
            str(root / "prep"),
            str(root / "models" / layout),
            layout=layout,
            budget="100KB",
            steps=40,
            eval_every=20,
            checkpoint_every=20,
            batch_size=128,
            model=AutoIntConfig(num_layers=1),
        )
        train(job)
    model, run = load_trained(root / "models" / "unified")
    export(model, run.feature_spec(), root / "export" / "unified")
    return root


def test_model_quality_notebook(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "quality"
    summary = execute(
        "01_model_quality.ipynb",
        out,
        model_path=str(demo / "export" / "unified"),
        data_path=str(demo / "holdout.tsv"),
        slice_field="C3",
        top_values=12,  # the rarest of them have too few rows for an AUC: null in the JSON
        attention_rows=256,
        top_pairs_k=5,
    )
    assert summary["rows"] == 1500
    assert 0.5 <= summary["auc"] <= 1.0 and 0.0 < summary["logloss"] < 1.0
    calibration = summary["calibration"]
    assert sum(b["rows"] for b in calibration) == 1500 and len(calibration) == 10
    assert all(0.0 <= b["observed_ctr"] <= 1.0 for b in calibration)
    assert sum(s["rows"] for s in summary["slices"]) == 1500
    assert all(isinstance(s["reliable"], bool) for s in summary["slices"])
    assert any(s["auc"] is None and not s["reliable"] for s in summary["slices"])
    histogram = summary["score_histogram"]  # bins over the scores' range, not over [0, 1]
    assert sum(b["negatives"] + b["positives"] for b in histogram) == 1500
    assert histogram[0]["left"] > 0.0 and histogram[-1]["right"] < 1.0
    strengths = [p["strength"] for p in summary["top_pairs"]]
    assert len(strengths) == 5 and strengths == sorted(strengths, reverse=True)
    assert all(0.0 < s <= 1.0 for s in strengths) and summary["attention_rows"] == 256
    assert_pngs(out, ["calibration.png", "scores.png", "slices.png", "attention.png"])


def write_user_dataset(root: Path, rows: int = 600) -> dict[str, str]:
    """The user's own data for notebook 02: a gzipped CSV with a header and its short-form
    schema file: a row id to ignore, categorical fields and a multi-valued one, no numeric
    field. Clicks follow `user`, so there is something to learn."""
    rng = np.random.default_rng(1)
    users = rng.integers(0, 20, rows)
    clicked = (rng.random(rows) < np.where(users < 10, 0.7, 0.2)).astype(int)
    genres = ["|".join(rng.choice(["rock", "jazz", "folk"], rng.integers(1, 3))) for _ in users]
    lines = [
        f"{i},{c},u{u},{g}" for i, (c, u, g) in enumerate(zip(clicked, users, genres, strict=True))
    ]
    (root / "music.csv.gz").write_bytes(
        gzip.compress(("id,clicked,user,genres\n" + "\n".join(lines) + "\n").encode())
    )
    schema = {
        "name": "music",
        "columns": ["id", "clicked", "user", "genres"],
        "label": "clicked",
        "ignore": ["id"],
        "multi_valued": {"genres": "|"},
    }
    (root / "music.json").write_text(json.dumps(schema))
    return {"name": "music", "path": str(root / "music.csv*"), "schema": str(root / "music.json")}


def test_embedding_budget_notebook(tmp_path: Path) -> None:
    out = tmp_path / "study"
    budgets = ["20KB", "60KB"]
    summary = execute(
        "02_embedding_budget.ipynb",
        out,
        rows=4000,
        eval_rows=2000,
        budgets=budgets,
        seeds=[0],
        probes=[1, 2],
        probes_budget="20KB",
        epochs=2,
        batch_size=256,
        num_layers=1,
        shared_data=str(SHARED_DATA),
        datasets=["frappe"],
        real_layouts=["unified", "per_feature"],
        real_seeds=[0],
        real_rows=2000,
    )
    generated = summary["generated"]
    points = generated["points"]
    hashed = sorted((p["layout"], p["budget"]) for p in points if p["layout"] != "collisionless")
    assert hashed == sorted((lay, b) for lay in ("unified", "per_feature") for b in budgets)
    assert [p["layout"] for p in points].count("collisionless") == 1
    for p in points:
        assert 0.5 <= p["auc_mean"] <= 1.0, p
        assert p["auc_mean"] < generated["ceiling_auc"], p  # nobody beats the planted model
        assert p["runs"] == 1 and p["logloss_mean"] > 0
    assert [c["budget"] for c in generated["comparison"]] == budgets
    assert [c["budget"] for c in generated["paired"]] == budgets
    assert sorted(p["probes"] for p in generated["probes"]) == [1, 2]
    figures = ["pareto_generated.png", "probes_generated.png"]
    if (SHARED_DATA / "frappe").is_dir():
        frappe = summary["real"]["frappe"]
        assert frappe["train_rows"] == 2000 and len(frappe["points"]) == 2 * len(budgets)
        assert all(0.0 <= p["auc_mean"] <= 1.0 for p in frappe["points"])
        figures.append("pareto_frappe.png")
    else:
        assert summary["real"] == {}
    assert_pngs(out, figures)
    assert sorted(summary["figures"]) == sorted(figures)
    assert (out / "runs.csv").is_file()


def test_embedding_budget_notebook_on_the_users_data_and_schema(tmp_path: Path) -> None:
    out = tmp_path / "study"
    music = write_user_dataset(tmp_path)  # no numeric field, a multi-valued one, gzipped
    summary = execute(
        "02_embedding_budget.ipynb",
        out,
        generated=False,
        budgets=["20KB"],
        epochs=2,
        batch_size=256,
        num_layers=1,
        shared_data="",
        datasets=["criteo", music],
        real_layouts=["unified"],
        real_seeds=[0],
    )
    assert summary["generated"] is None and set(summary["real"]) == {"music"}  # criteo: skipped
    music_run = summary["real"]["music"]  # read with the user's schema file
    assert (music_run["train_rows"], music_run["eval_rows"]) == (480, 120)
    (point,) = music_run["points"]
    assert 0.5 < point["auc_mean"] <= 1.0 and point["runs"] == 1  # clicks follow `user`
    (row,) = music_run["table"]
    assert row["unified"].startswith(f"{point['auc_mean']:.4f} / ")  # one seed: no "±"
    assert_pngs(out, ["pareto_music.png"])
    assert summary["figures"] == ["pareto_music.png"]


def test_a_bad_dataset_entry_stops_notebook_02_in_one_line_before_training(
    tmp_path: Path,
) -> None:
    out = tmp_path / "study"
    music = write_user_dataset(tmp_path)
    with pytest.raises(papermill.PapermillExecutionError) as raised:
        execute(
            "02_embedding_budget.ipynb",
            out,
            datasets=[{**music, "eval_fraction": "0.2"}],
            shared_data="",
        )
    error = raised.value
    assert (error.ename, error.traceback) == ("DatasetError", [f"DatasetError: {error.evalue}"])
    assert error.evalue == (
        "`eval_fraction` should be a number in (0, 1). Received: `eval_fraction='0.2'` "
        "for dataset `music`"
    )
    assert not list(out.glob("*.png"))  # stopped before the generated study trained anything


def test_compare_runs_notebook(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "compare"
    eval_file = tmp_path / "unified_eval.json"
    eval_file.write_text(json.dumps({"auc": 0.61, "logloss": 0.55, "rows": 1500}))
    run_dirs = [str(demo / "models" / name) for name in ("unified", "per_feature")]
    summary = execute(
        "03_compare_runs.ipynb", out, run_dirs=run_dirs, eval_files={"unified": str(eval_file)}
    )
    runs = {r["run"]: r for r in summary["runs"]}
    assert set(runs) == {"unified", "per_feature"}
    for name, run in runs.items():
        written = json.loads((demo / "models" / name / "train_summary.json").read_text())
        assert run["eval.auc"] == pytest.approx(written["eval"]["auc"])
        assert run["steps"] == 40
        assert run["validation/epoch_auc"] == pytest.approx(written["best_val_auc"], abs=0.2)
    assert runs["unified"]["evaluate.auc"] == 0.61
    assert runs["per_feature"]["evaluate.auc"] is None or math.isnan(
        runs["per_feature"]["evaluate.auc"]
    )
    assert "epoch_auc" in summary["scalar_tags"]
    assert_pngs(out, ["curves.png", "metrics.png"])
    assert np.isfinite([runs[n]["eval.auc"] for n in runs]).all()


@pytest.mark.slow
def test_daily_notebook_runs_the_benchmark_and_plots_each_strategy_and_layout(
    tmp_path: Path,
) -> None:
    out = tmp_path / "daily"
    layouts = ["unified", "collisionless"]
    summary = execute(
        "04_daily.ipynb",
        out,
        days=2,
        rows=1500,
        passes=1,
        layouts=layouts,
        extra_args=["--batch-size", "256", "--workdir", str(tmp_path / "work")],
    )
    line = json.loads((out / "daily.json").read_text())
    results = line["results"]
    # days 1 and 2 of each layout and strategy, tested on days 2 and 3
    assert sorted((r["layout"], r["strategy"], r["day"], r["test_day"]) for r in results) == sorted(
        (layout, strategy, day, day + 1)
        for layout in layouts
        for strategy in ("frozen", "retrain", "warm")
        for day in (1, 2)
    )
    for r in results:
        assert 0.4 < r["auc"] < 1.0 and r["logloss"] > 0 and r["calibration"] > 0, r
        assert r["new_id_rows"] > 0 and 0.0 < r["new_id_auc"] < 1.0, r
    day_one = {(r["layout"], r["auc"]) for r in results if r["day"] == 1}
    assert len(day_one) == len(layouts)  # one day-1 model per layout, shared by the strategies
    frozen = [r for r in results if r["strategy"] == "frozen" and r["day"] == 2]
    assert all(r["train_seconds"] == 0.0 for r in frozen)
    assert set(summary["warm_vs_retrain_auc"]) == set(layouts)
    assert isinstance(summary["unified_vs_collisionless_new_ids"], float)
    assert all(isinstance(v, bool) for v in summary["targets"].values())
    figures = ["auc.png", "auc_by_strategy.png", "calibration.png", "new_id_auc.png"]
    assert summary["figures"] == figures
    assert_pngs(out, figures)


def test_elastic_table_notebook(tmp_path: Path) -> None:
    out = tmp_path / "elastic"
    summary = execute(
        "05_elastic_table.ipynb",
        out,
        datasets=["generated"],
        seeds=[0],
        generated_rows=2000,
    )
    line = json.loads((out / "elastic.json").read_text())
    assert line["nested_widths"] == [2, 4, 8] and line["seeds"] == [0]
    (run,) = line["runs"]
    assert set(run["auc"]) == {
        "today",
        "independent_2",
        "independent_4",
        *(f"nested_{m}_{d}" for m in (2, 4, 8) for d in ("float32", "int8")),
    }
    assert all(0.4 < auc < 1.0 for auc in run["auc"].values()), run["auc"]
    bytes_ = run["table_bytes"]
    assert bytes_["nested_2_float32"] * 4 == bytes_["nested_8_float32"] == bytes_["today"]
    assert bytes_["independent_2"] == bytes_["nested_2_float32"]
    assert bytes_["nested_8_int8"] / bytes_["nested_8_float32"] == (8 + 4) / 32
    assert abs(run["auc"]["nested_8_int8"] - run["auc"]["nested_8_float32"]) < 0.01
    assert set(line["serving"]["generated"]["batch1_p50_ms"]) == {"float32", "int8"}
    assert summary["figures"] == ["pareto.png"] and summary["pareto"]["generated"]
    assert len(summary["points"]) == 3 + 3 + 3  # nested float32 / int8 and trained alone, 3 widths
    assert_pngs(out, ["pareto.png"])
