"""The elastic benchmark's table and Pareto figure."""

import pandas as pd
import pytest

from unified_embedding.evaluation.elastic_plots import elastic_table, pareto_figure, pareto_front


def run(dataset: str, seed: int, shift: float = 0.0) -> dict:
    auc = {
        "today": 0.80,
        "independent_2": 0.74,
        "independent_4": 0.78,
        "nested_2_float32": 0.76,
        "nested_2_int8": 0.759,
        "nested_4_float32": 0.785,
        "nested_4_int8": 0.785,
        "nested_8_float32": 0.801,
        "nested_8_int8": 0.8,
    }
    rows = 1000
    table_bytes = {
        "today": rows * 32,
        "independent_2": rows * 8,
        "independent_4": rows * 16,
        **{f"nested_{m}_float32": rows * m * 4 for m in (2, 4, 8)},
        **{f"nested_{m}_int8": rows * (m + 4) for m in (2, 4, 8)},
    }
    return {
        "dataset": dataset,
        "seed": seed,
        "auc": {k: v + shift for k, v in auc.items()},
        "table_bytes": table_bytes,
    }


def test_the_table_averages_seeds_per_dataset_model_and_width() -> None:
    table = elastic_table([run("a", 0), run("a", 1, 0.02), run("b", 0)], full_width=8)
    assert len(table) == 2 * 9
    today = table[(table.dataset == "a") & (table.model == "trained alone") & (table.width == 8)]
    assert today["auc"].item() == pytest.approx(0.81) and today["seeds"].item() == 2
    int8 = table[(table.dataset == "b") & (table.model == "nested int8") & (table.width == 2)]
    assert int8["table_bytes"].item() == 6000


def test_the_pareto_front_keeps_the_points_nothing_beats() -> None:
    points = pd.DataFrame(
        {"table_bytes": [6, 8, 8, 12, 16, 32], "auc": [0.759, 0.76, 0.74, 0.8, 0.785, 0.801]}
    )
    front = pareto_front(points)
    assert list(zip(front.table_bytes, front.auc, strict=True)) == [
        (6, 0.759),
        (8, 0.76),
        (12, 0.8),
        (32, 0.801),
    ]


def test_the_figure_has_a_panel_per_dataset() -> None:
    figure = pareto_figure(elastic_table([run("a", 0), run("b", 0)], full_width=8))
    assert [ax.get_title() for ax in figure.axes] == ["a", "b"]
    assert figure.axes[0].get_xscale() == "log"


def test_an_unknown_key_is_refused() -> None:
    bad = run("a", 0)
    bad["auc"]["nested_2"] = 0.5
    bad["table_bytes"]["nested_2"] = 1
    with pytest.raises(ValueError, match="Received: `nested_2`"):
        elastic_table([bad], full_width=8)
