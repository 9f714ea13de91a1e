"""The budget study's figures draw what their tables hold (a line per layout, the ceiling, error
bars only over seeds), say so (legends, seeds), and keep log-axis tick labels apart."""

import itertools

import numpy as np
import pandas as pd
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from unified_embedding.evaluation import budget_plots

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
    figure = budget_plots.pareto_figure(POINTS, ceiling_auc=0.86)
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
        "planted",
        "unified",
        "per-feature",
        "collision-free",
    ]


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


def test_pareto_log_axes_have_readable_size_ticks() -> None:
    figure = budget_plots.pareto_figure(POINTS)  # 2.5k .. 2M parameters = 10 KB .. 8 MB
    auc_axes = figure.axes[0]
    (size_axes,) = auc_axes.child_axes
    assert assert_readable(figure, auc_axes.xaxis) == ["10k", "100k", "1M"]
    assert assert_readable(figure, size_axes.xaxis) == ["10 KB", "100 KB", "1 MB", "10 MB"]
    # under a decade (20 KB and 60 KB budgets): more labels, still apart
    short = POINTS[POINTS["layout"] == "unified"].assign(embedding_params=[5_000, 15_000])
    figure = budget_plots.pareto_figure(short)
    assert assert_readable(figure, figure.axes[0].xaxis) == ["5k", "10k", "20k"]
    (size_axes,) = figure.axes[0].child_axes
    assert assert_readable(figure, size_axes.xaxis) == ["20 KB", "30 KB", "50 KB"]


def test_size_label_uses_the_budget_units() -> None:
    assert budget_plots.size_label(10_000, "B") == "10 KB"
    assert budget_plots.size_label(2_500_000, "B") == "2.5 MB"
    assert budget_plots.size_label(500, "B") == "500 B"
    assert budget_plots.size_label(25_000) == "25k" and budget_plots.size_label(1e6) == "1M"


def test_one_seed_has_no_error_bars_and_says_so() -> None:
    one = POINTS.assign(runs=1, auc_std=np.nan, logloss_std=np.nan)
    figure = budget_plots.pareto_figure(one, title="data")
    assert figure.get_suptitle() == "data (1 seed, no error bars)"
    assert not any(c.has_yerr for ax in figure.axes[:2] for c in ax.containers)
    three = POINTS.assign(runs=3)
    figure = budget_plots.pareto_figure(three, title="data")
    assert figure.get_suptitle() == "data (mean ± std over 3 seeds)"
    assert all(c.has_yerr for ax in figure.axes[:2] for c in ax.containers)
    probes = pd.DataFrame(
        {"probes": [1, 2], "auc_mean": [0.7, 0.71], "auc_std": [np.nan] * 2, "runs": [1, 1]}
    )
    (ax,) = budget_plots.probes_figure(probes).axes
    assert "1 seed" in ax.get_title() and not ax.containers[0].has_yerr
