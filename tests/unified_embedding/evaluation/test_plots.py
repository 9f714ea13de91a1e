"""Figures draw what their DataFrames hold (lines, bars, ceilings), say what they draw (labels,
legends, seeds), keep tick labels apart, and save as PNG files."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from unified_embedding.evaluation import plots


def test_calibration_figure_plots_buckets_and_the_diagonal() -> None:
    table = pd.DataFrame({"mean_predicted": [0.1, 0.3], "observed_ctr": [0.12, 0.28]})
    (ax,) = plots.calibration_figure(table).axes
    diagonal, model = ax.lines
    assert list(diagonal.get_xdata()) == list(diagonal.get_ydata())
    np.testing.assert_allclose(model.get_ydata(), [0.12, 0.28])


def test_attention_heatmap_and_bars_and_save_write_png(tmp_path: Path) -> None:
    figure = plots.attention_heatmap(np.eye(3) / 1.0, ["a", "b", "c"])
    image = figure.axes[0].images[0]
    np.testing.assert_allclose(image.get_array(), np.eye(3))
    path = plots.save(figure, tmp_path / "sub" / "attention.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bars = plots.run_bars_figure(pd.DataFrame({"run": ["a", "b"], "auc": [0.7, 0.8]}), ["auc"])
    heights = [patch.get_height() for patch in bars.axes[0].patches]
    np.testing.assert_allclose(heights, [0.7, 0.8])


def test_histogram_stacks_positives_on_negatives() -> None:
    hist = pd.DataFrame(
        {"left": [0.0, 0.5], "right": [0.5, 1.0], "negatives": [3, 1], "positives": [1, 2]}
    )
    (ax,) = plots.score_histogram_figure(hist, stacked=True).axes
    negatives, positives = ax.containers
    assert [p.get_height() for p in negatives] == [3, 1]
    assert [p.get_height() for p in positives] == [1, 2]
    assert [p.get_y() for p in positives] == [3, 1]  # stacked on the negatives


def test_histogram_overlays_per_class_shares_labelled_so() -> None:
    # 4 negatives (3 | 1), 3 positives (1 | 2): each class drawn as its share of its own rows
    hist = pd.DataFrame(
        {"left": [0.0, 0.5], "right": [0.5, 1.0], "negatives": [3, 1], "positives": [1, 2]}
    )
    (ax,) = plots.score_histogram_figure(hist).axes
    assert ax.containers == []  # no bars, nothing stacked
    negatives, positives = ax.patches
    np.testing.assert_allclose(negatives.get_data().values, [0.75, 0.25])
    np.testing.assert_allclose(positives.get_data().values, [1 / 3, 2 / 3])
    np.testing.assert_allclose(positives.get_data().edges, [0.0, 0.5, 1.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "label 0 (4 rows)",
        "label 1 (3 rows)",
    ]
    assert "each label sums to 1" in ax.get_title() and "share" in ax.get_ylabel()


def test_stacked_histogram_says_it_is_stacked() -> None:
    hist = pd.DataFrame({"left": [0.0], "right": [1.0], "negatives": [3], "positives": [1]})
    (ax,) = plots.score_histogram_figure(hist, stacked=True).axes
    assert "stacked" in ax.get_title() and "stacked" in ax.get_ylabel()
    assert "stacked" in ax.get_legend().get_texts()[1].get_text()


def test_slice_plot_draws_undefined_auc_as_na_not_as_zero() -> None:
    slices = pd.DataFrame(
        {
            "value": ["a", "", "c", "(other)"],
            "rows": [500, 300, 20, 80],
            "positives": [100, 0, 5, 40],
            "auc": [0.7, np.nan, np.nan, 0.6],
        }
    )
    (ax,) = plots.slice_auc_figure(slices, "C1", 0.68).axes
    assert sorted(p.get_width() for p in ax.patches) == [0.6, 0.7]  # two bars, no zero bar
    notes = sorted(t.get_text() for t in ax.texts if t.get_text().startswith("n/a"))
    assert notes == ["n/a (one class only)", "n/a (too few rows)"]
    top_down = sorted(zip(ax.get_yticks(), ax.get_yticklabels(), strict=True), key=lambda t: -t[0])
    assert [label.get_text() for _, label in top_down] == [
        "a (500 rows, 100 positives)",
        "(missing) (300 rows, 0 positives)",
        "c (20 rows, 5 positives)",
        "(other) (80 rows, 40 positives)",
    ]
    assert ax.get_xlabel() == "AUC"
    low, high = ax.get_ylim()  # the bottom row has no bar: its note must still be inside
    assert low < min(ax.get_yticks()) - 0.3 and high > max(ax.get_yticks()) + 0.3
    (overlapping,) = plots.slice_auc_figure(slices, "genres", 0.68, overlapping=True).axes
    assert "multi-valued" in overlapping.get_title()


def test_slice_bars_on_few_positives_are_marked_unreliable() -> None:
    # rarer class: a 100 negatives-or-positives, b 12 positives, c 25 negatives (of 300 rows)
    slices = pd.DataFrame(
        {
            "value": ["a", "b", "c"],
            "rows": [400, 350, 300],
            "positives": [100, 12, 275],
            "auc": [0.71, 0.64, 0.58],
        }
    )
    (ax,) = plots.slice_auc_figure(slices, "C1", 0.68).axes
    bars = {round(p.get_width(), 2): p for p in ax.patches}
    assert bars[0.71].get_hatch() is None and bars[0.71].get_alpha() is None
    assert bars[0.64].get_hatch() == "//" and bars[0.58].get_hatch() == "//"  # under 30
    assert bars[0.64].get_alpha() < 1
    values = sorted(t.get_text() for t in ax.texts)
    assert values == ["0.580 unreliable", "0.640 unreliable", "0.710"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "unreliable: under 30 rows of a class" in legend
    # auc_by_slice's own `reliable` column wins over the counts
    marked = slices.assign(reliable=[False, True, True])
    (ax,) = plots.slice_auc_figure(marked, "C1", 0.68).axes
    assert sorted(t.get_text() for t in ax.texts)[-1] == "0.710 unreliable"


def test_histogram_x_axis_spans_the_bins_and_says_so() -> None:
    hist = pd.DataFrame(
        {"left": [0.01, 0.02], "right": [0.02, 0.03], "negatives": [5, 1], "positives": [0, 1]}
    )
    (ax,) = plots.score_histogram_figure(hist).axes
    assert ax.get_xlim() == (0.01, 0.03)
    assert ax.get_xlabel() == "predicted probability (0.01 to 0.03)"


def test_attention_colours_start_at_zero_so_uniform_weights_look_uniform() -> None:
    # near-uniform over 4 fields: 0.24..0.26; min-max scaling would span the whole colour map
    matrix = np.full((4, 4), 0.25) + np.array([0.01, -0.01, 0.0, 0.0])
    figure = plots.attention_heatmap(matrix, ["a", "b", "c", "d"])
    image = figure.axes[0].images[0]
    assert image.get_clim() == (0.0, pytest.approx(0.26))
    colorbar = figure.axes[1]
    assert "uniform 1/4 = 0.250" in colorbar.get_ylabel()
    assert [line.get_ydata()[0] for line in colorbar.lines] == [0.25]


def test_curves_are_plotted_against_what_the_x_axis_says() -> None:
    # Keras logs one epoch_auc per evaluation, step = evaluation index 0, 1, 2
    scalars = pd.DataFrame(
        {
            "run": ["a"] * 3,
            "split": ["validation"] * 3,
            "tag": ["epoch_auc"] * 3,
            "step": [0, 1, 2],
            "value": [0.6, 0.65, 0.7],
        }
    )
    (ax,) = plots.run_curves_figure(scalars, ["epoch_auc"], "validation").axes
    assert ax.get_xlabel() == "evaluation index"
    assert list(ax.lines[0].get_xdata()) == [0, 1, 2]
    figure = plots.run_curves_figure(scalars, ["epoch_auc"], "validation", {"a": 20})
    (ax,) = figure.axes
    assert ax.get_xlabel().startswith("training step")
    assert list(ax.lines[0].get_xdata()) == [20, 40, 60]  # (index + 1) * eval_every
    assert list(ax.get_xticks()) == [20, 40, 60]  # a tick per evaluation, not 21, 24, ...


def test_bars_carry_their_values_when_the_axis_does_not_start_at_zero() -> None:
    table = pd.DataFrame({"run": ["a", "b"], "auc": [0.7251, 0.7208]})
    (ax,) = plots.run_bars_figure(table, ["auc"]).axes
    assert [t.get_text() for t in ax.texts] == ["0.7251", "0.7208"]
    assert ax.get_ylim()[0] > 0 and "not from 0" in ax.get_ylabel()
