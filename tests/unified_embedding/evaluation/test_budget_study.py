"""The budget study: config checks, probes specs, aggregation oracles and a tiny real run."""

import numpy as np
import pandas as pd
import pytest

from unified_embedding.budget.params import numeric_params
from unified_embedding.budget.plan import parse_budget, plan_budget
from unified_embedding.contract.schemas import criteo
from unified_embedding.evaluation.budget_study import (
    COLLISION_FREE,
    StudyConfig,
    aggregate,
    compare_layouts,
    paired_deltas,
    pareto_table,
    run_budget_study,
    run_probes_sweep,
    with_probes,
)
from unified_embedding.evaluation.study_data import (
    GeneratedData,
    StudyData,
    generated_data,
    split_rows,
)
from unified_embedding.layers.unified import UnifiedEmbedding
from unified_embedding.models.autoint import AutoIntConfig
from unified_embedding.training.experiment import TrainConfig


def test_study_config_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="layouts"):
        StudyConfig(layouts=("unified", "dense"))
    with pytest.raises(ValueError, match="seeds"):
        StudyConfig(seeds=())
    with pytest.raises(ValueError, match="budget"):
        StudyConfig(budgets=("ten megabytes",))
    assert StudyConfig(budgets=("10KB", "1MB")).budget_bytes == (10_000, 1_000_000)


def test_default_study_spans_five_budgets_and_30x() -> None:
    config = StudyConfig()
    assert len(config.budgets) >= 5 and len(config.seeds) >= 3
    assert max(config.budget_bytes) / min(config.budget_bytes) >= 30


@pytest.mark.parametrize("probes", [1, 2, 4])
def test_with_probes_keeps_fields_embedding_dim_wide_without_projections(probes: int) -> None:
    spec = with_probes(criteo(), probes)
    assert {f.probes for f in spec.categorical_fields} == {probes}
    assert spec.table.width * probes == spec.embedding_dim
    plan = plan_budget(spec, parse_budget("100KB"))
    layer = UnifiedEmbedding(spec.replace(table=plan.table))
    # No projections: every parameter is the shared table or a numeric field's two vectors.
    assert plan.params.unified == plan.table.rows * plan.table.width + numeric_params(spec)
    assert plan.params.unified <= 100_000 // 4
    assert layer.spec.table.rows == plan.table.rows


def test_with_probes_rejects_a_probe_count_not_dividing_the_dim() -> None:
    with pytest.raises(ValueError, match="divide"):
        with_probes(criteo(), 3)


def test_aggregate_means_and_sample_std_match_numpy() -> None:
    auc = {("unified", "10KB"): [0.70, 0.72, 0.74], ("per_feature", "10KB"): [0.66, 0.69, 0.69]}
    records = [
        {
            "dataset": "d",
            "layout": layout,
            "budget": budget,
            "budget_bytes": 10_000,
            "probes": 2,
            "seed": seed,
            "embedding_params": 2496,
            "auc": value,
            "logloss": 1.0 - value,
        }
        for (layout, budget), values in auc.items()
        for seed, value in enumerate(values)
    ]
    points = aggregate(pd.DataFrame.from_records(records)).set_index("layout")
    for (layout, _), values in auc.items():
        assert points.loc[layout, "auc_mean"] == pytest.approx(np.mean(values))
        assert points.loc[layout, "auc_std"] == pytest.approx(np.std(values, ddof=1))
        assert points.loc[layout, "logloss_mean"] == pytest.approx(1.0 - np.mean(values))
        assert points.loc[layout, "runs"] == 3
    table = compare_layouts(points.reset_index())
    assert table["auc_delta"].iloc[0] == pytest.approx(0.72 - np.mean([0.66, 0.69, 0.69]))
    assert bool(table["wins"].iloc[0])
    assert table["logloss_delta"].iloc[0] == pytest.approx(-table["auc_delta"].iloc[0])


def test_split_rows_is_a_seeded_partition() -> None:
    data = generated_data(GeneratedData(rows=90, eval_rows=10))
    train, evaluation = split_rows(data.train, 0.3, seed=1)
    assert (len(train), len(evaluation)) == (63, 27)
    joined = np.sort(np.concatenate([train.columns["C26"], evaluation.columns["C26"]]))
    np.testing.assert_array_equal(joined, np.sort(data.train.columns["C26"]))
    again, _ = split_rows(data.train, 0.3, seed=1)
    np.testing.assert_array_equal(again.columns["C26"], train.columns["C26"])


@pytest.fixture(scope="module")
def tiny() -> StudyData:
    return generated_data(GeneratedData(rows=1500, eval_rows=1000))


def distinct_params(data: StudyData) -> int:
    """Oracle for the collision-free size: (distinct non-empty values + 2) rows per field."""
    spec = data.spec
    rows = sum(len(set(data.train.columns[f.name]) - {""}) + 2 for f in spec.categorical_fields)
    return rows * spec.embedding_dim + numeric_params(spec)


def test_tiny_study_has_one_row_per_layout_budget_and_seed(tiny: StudyData) -> None:
    config = StudyConfig(
        budgets=("20KB",),
        seeds=(0,),
        probes=(2, 4),
        probes_budget="20KB",
        train=TrainConfig(batch_size=256),
        model=AutoIntConfig(num_layers=1),
    )
    seen = []
    runs = run_budget_study(tiny, config, progress=seen.append)
    assert len(runs) == len(seen) == 3
    hashed = runs[runs["layout"] != "collisionless"]
    assert sorted(zip(hashed["layout"], hashed["budget"], strict=True)) == [
        ("per_feature", "20KB"),
        ("unified", "20KB"),
    ]
    assert (hashed["embedding_params"] <= hashed["budget_bytes"] // 4).all()
    free = runs[runs["layout"] == "collisionless"].iloc[0]
    assert free["budget"] == COLLISION_FREE
    assert free["embedding_params"] == distinct_params(tiny)
    assert free["budget_bytes"] == 4 * free["embedding_params"]
    assert runs["auc"].between(0.0, 1.0).all() and (runs["logloss"] > 0).all()
    assert tiny.ceiling_auc is not None and 0.5 < tiny.ceiling_auc < 1.0

    seen.clear()
    sweep = run_probes_sweep(tiny, config, progress=seen.append, reuse=runs)
    assert sweep["probes"].tolist() == [2, 4] and sweep["table_width"].tolist() == [8, 4]
    assert len(seen) == 1  # probes=2, width 8 is the spec's default: the study's unified run
    reused = runs[runs["layout"] == "unified"].iloc[0].to_dict()
    assert sweep.iloc[0].to_dict() == reused
    assert (sweep["layout"] == "unified").all()
    assert (sweep["embedding_params"] <= 20_000 // 4).all()


def test_pareto_table_orders_budgets_and_formats_cells() -> None:
    points = pd.DataFrame(
        {
            "layout": ["unified", "per_feature", "unified", "collisionless"],
            "budget": ["100KB", "100KB", "10KB", COLLISION_FREE],
            "budget_bytes": [100_000, 100_000, 10_000, 9_000_000],
            "embedding_params": [24_992, 24_960, 2_496, 2_250_000],
            "auc_mean": [0.8, 0.79, 0.77, 0.81],
            "auc_std": [0.001, 0.002, 0.003, 0.004],
            "logloss_mean": [0.4, 0.41, 0.42, 0.39],
            "logloss_std": [0.01, 0.02, 0.03, 0.04],
        }
    )
    table = pareto_table(points)
    assert table["budget"].tolist() == ["10KB", "100KB", COLLISION_FREE]
    assert list(table.columns) == ["budget", "unified", "per_feature", "collisionless"]
    assert table.loc[0, "unified"] == "0.7700 ± 0.0030 / 0.4200 ± 0.0300 (2,496)"
    assert table.loc[0, "per_feature"] == ""


def test_paired_deltas_difference_runs_of_the_same_seed() -> None:
    # seed:             0     1     2
    # unified auc     0.70  0.75  0.80     per-seed deltas: +0.02, -0.01, +0.03
    # per_feature auc 0.68  0.76  0.77
    records = [
        {
            "dataset": "d",
            "layout": layout,
            "budget": "10KB",
            "budget_bytes": 10_000,
            "probes": 2,
            "seed": seed,
            "auc": auc,
            "logloss": 1.0 - auc,
        }
        for layout, aucs in (("unified", [0.70, 0.75, 0.80]), ("per_feature", [0.68, 0.76, 0.77]))
        for seed, auc in enumerate(aucs)
    ]
    table = paired_deltas(pd.DataFrame.from_records(records))
    row = table.iloc[0]
    deltas = np.array([0.02, -0.01, 0.03])
    assert row["seeds"] == 3 and row["auc_wins"] == 2
    assert row["auc_delta_mean"] == pytest.approx(deltas.mean())
    assert row["auc_delta_std"] == pytest.approx(deltas.std(ddof=1))
    assert row["logloss_delta_mean"] == pytest.approx(-deltas.mean())
