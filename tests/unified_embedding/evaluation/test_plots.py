"""Figures draw what their DataFrames hold (lines, bars, ceilings), say what they draw (labels,
legends, seeds), keep tick labels apart, and save as PNG files."""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from unified_embedding.evaluation import plots

POINTS = pd.DataFrame(
    {
        "layout": ["unified", "unified", "per_feature", "per_feature", "collisionless"],
        "embedding_params": [2_500, 25_000, 2_500, 25_000, 2_000_000],
        "auc_mean": [0.77, 0.80, 0.73, 0.79, 0.81],
        "auc_std": [0.01, 0.01, 0.02, np.nan, 0.0],
        "logloss_mean": [0.45, 0.43, 0.47, 0.44, 0.42],
        "logloss_std": [0.01] * 5,
    }
)


def test_pareto_figure_has_a_line_per_layout_on_log_axes_and_the_ceiling() -> None:
    figure = plots.pareto_figure(POINTS, ceiling_auc=0.86)
    auc_axes, loss_axes = figure.axes
    assert auc_axes.get_xscale() == loss_axes.get_xscale() == "log"
    assert len(auc_axes.containers) == len(loss_axes.containers) == 3  # errorbars per layout
    unified = auc_axes.containers[0].lines[0]  # layouts in order: unified, per-feature, free
    np.testing.assert_allclose(np.asarray(unified.get_xdata(), float), [2_500, 25_000])
    np.testing.assert_allclose(np.asarray(unified.get_ydata(), float), [0.77, 0.80])
    ceilings = [line for line in auc_axes.lines if list(line.get_ydata()) == [0.86, 0.86]]
    assert len(ceilings) == 1
    labels = auc_axes.get_legend_handles_labels()[1]
    assert [label.split()[0] for label in labels] == [
        "planted", "unified", "per-feature", "collision-free"
    ]  # fmt: skip


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
    hist = pd.DataFrame({"left": [0.0, 0.5], "right": [0.5, 1.0], "negatives": [3, 1],
                         "positives": [1, 2]})  # fmt: skip
    (ax,) = plots.score_histogram_figure(hist, stacked=True).axes
    negatives, positives = ax.containers
    assert [p.get_height() for p in negatives] == [3, 1]
    assert [p.get_height() for p in positives] == [1, 2]
    assert [p.get_y() for p in positives] == [3, 1]  # stacked on the negatives


def drawn_tick_labels(figure: Figure, axis: Axis) -> list[Text]:
    """The tick labels of `axis` a render shows (inside the view, non-empty)."""
    FigureCanvasAgg(figure).draw()
    low, high = sorted(axis.get_view_interval())
    ticks = axis.get_major_ticks()
    return [
        t.label1 if t.label1.get_visible() else t.label2
        for t, loc in zip(ticks, axis.get_majorticklocs(), strict=False)
        if low <= loc <= high and (t.label1.get_text() or t.label2.get_text())
    ]


def assert_readable(figure: Figure, axis: Axis) -> list[str]:
    """At least two labels, none overlapping another; returns their texts."""
    labels = drawn_tick_labels(figure, axis)
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = [label.get_window_extent(renderer) for label in labels]
    for a, b in itertools.pairwise(boxes):
        assert not a.overlaps(b), [label.get_text() for label in labels]
    assert len(labels) >= 2, [label.get_text() for label in labels]
    return [label.get_text() for label in labels]


def test_histogram_overlays_per_class_shares_labelled_so() -> None:
    # 4 negatives (3 | 1), 3 positives (1 | 2): each class drawn as its share of its own rows
    hist = pd.DataFrame({"left": [0.0, 0.5], "right": [0.5, 1.0], "negatives": [3, 1],
                         "positives": [1, 2]})  # fmt: skip
    (ax,) = plots.score_histogram_figure(hist).axes
    assert ax.containers == []  # no bars, nothing stacked
    negatives, positives = ax.patches
    np.testing.assert_allclose(negatives.get_data().values, [0.75, 0.25])
    np.testing.assert_allclose(positives.get_data().values, [1 / 3, 2 / 3])
    np.testing.assert_allclose(positives.get_data().edges, [0.0, 0.5, 1.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "label 0 (4 rows)", "label 1 (3 rows)"
    ]  # fmt: skip
    assert "each label sums to 1" in ax.get_title() and "share" in ax.get_ylabel()


def test_stacked_histogram_says_it_is_stacked() -> None:
    hist = pd.DataFrame({"left": [0.0], "right": [1.0], "negatives": [3], "positives": [1]})
    (ax,) = plots.score_histogram_figure(hist, stacked=True).axes
    assert "stacked" in ax.get_title() and "stacked" in ax.get_ylabel()
    assert "stacked" in ax.get_legend().get_texts()[1].get_text()


def test_slice_plot_draws_undefined_auc_as_na_not_as_zero() -> None:
    slices = pd.DataFrame({
        "value": ["a", "b", "c", "(other)"], "rows": [500, 300, 20, 80],
        "positives": [100, 0, 5, 10], "auc": [0.7, np.nan, np.nan, 0.6],
    })  # fmt: skip
    (ax,) = plots.slice_auc_figure(slices, "C1", 0.68).axes
    assert sorted(p.get_width() for p in ax.patches) == [0.6, 0.7]  # two bars, no zero bar
    notes = sorted(t.get_text() for t in ax.texts)
    assert notes == ["n/a (one class only)", "n/a (too few rows)"]
    top_down = sorted(zip(ax.get_yticks(), ax.get_yticklabels(), strict=True), key=lambda t: -t[0])
    assert [label.get_text() for _, label in top_down] == [
        "a (500 rows)", "b (300 rows)", "c (20 rows)", "(other) (80 rows)"
    ]  # fmt: skip
    assert ax.get_xlabel() == "AUC"
    low, high = ax.get_ylim()  # the bottom row has no bar: its note must still be inside
    assert low < min(ax.get_yticks()) - 0.3 and high > max(ax.get_yticks()) + 0.3
    (overlapping,) = plots.slice_auc_figure(slices, "genres", 0.68, overlapping=True).axes
    assert "multi-valued" in overlapping.get_title()


def test_attention_colours_start_at_zero_so_uniform_weights_look_uniform() -> None:
    # near-uniform over 4 fields: 0.24..0.26; min-max scaling would span the whole colour map
    matrix = np.full((4, 4), 0.25) + np.array([0.01, -0.01, 0.0, 0.0])
    figure = plots.attention_heatmap(matrix, ["a", "b", "c", "d"])
    image = figure.axes[0].images[0]
    assert image.get_clim() == (0.0, pytest.approx(0.26))
    colorbar = figure.axes[1]
    assert "uniform 1/4 = 0.250" in colorbar.get_ylabel()
    assert [line.get_ydata()[0] for line in colorbar.lines] == [0.25]


def test_pareto_log_axes_have_readable_size_ticks() -> None:
    figure = plots.pareto_figure(POINTS)  # 2.5k .. 2M parameters = 10 KB .. 8 MB
    auc_axes = figure.axes[0]
    (size_axes,) = auc_axes.child_axes
    assert assert_readable(figure, auc_axes.xaxis) == ["10k", "100k", "1M"]
    assert assert_readable(figure, size_axes.xaxis) == ["10 KB", "100 KB", "1 MB", "10 MB"]
    # under a decade (20 KB and 60 KB budgets): more labels, still apart
    short = POINTS[POINTS["layout"] == "unified"].assign(embedding_params=[5_000, 15_000])
    figure = plots.pareto_figure(short)
    assert assert_readable(figure, figure.axes[0].xaxis) == ["5k", "10k", "20k"]
    (size_axes,) = figure.axes[0].child_axes
    assert assert_readable(figure, size_axes.xaxis) == ["20 KB", "30 KB", "50 KB"]


def test_size_label_uses_the_budget_units() -> None:
    assert plots.size_label(10_000, "B") == "10 KB"
    assert plots.size_label(2_500_000, "B") == "2.5 MB"
    assert plots.size_label(500, "B") == "500 B"
    assert plots.size_label(25_000) == "25k" and plots.size_label(1e6) == "1M"


def test_one_seed_has_no_error_bars_and_says_so() -> None:
    one = POINTS.assign(runs=1, auc_std=np.nan, logloss_std=np.nan)
    figure = plots.pareto_figure(one, title="data")
    assert figure.get_suptitle() == "data (1 seed, no error bars)"
    assert not any(c.has_yerr for ax in figure.axes[:2] for c in ax.containers)
    three = POINTS.assign(runs=3)
    figure = plots.pareto_figure(three, title="data")
    assert figure.get_suptitle() == "data (mean ± std over 3 seeds)"
    assert all(c.has_yerr for ax in figure.axes[:2] for c in ax.containers)
    probes = pd.DataFrame({"probes": [1, 2], "auc_mean": [0.7, 0.71], "auc_std": [np.nan] * 2,
                           "runs": [1, 1]})  # fmt: skip
    (ax,) = plots.probes_figure(probes).axes
    assert "1 seed" in ax.get_title() and not ax.containers[0].has_yerr


def test_curves_are_plotted_against_what_the_x_axis_says() -> None:
    # Keras logs one epoch_auc per evaluation, step = evaluation index 0, 1, 2
    scalars = pd.DataFrame({"run": ["a"] * 3, "split": ["validation"] * 3,
                            "tag": ["epoch_auc"] * 3, "step": [0, 1, 2],
                            "value": [0.6, 0.65, 0.7]})  # fmt: skip
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
