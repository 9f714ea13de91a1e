"""Figures draw what their DataFrames hold (lines, bars, ceilings) and save as PNG files."""

from pathlib import Path

import numpy as np
import pandas as pd

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
    (ax,) = plots.score_histogram_figure(hist).axes
    negatives, positives = ax.containers
    assert [p.get_height() for p in negatives] == [3, 1]
    assert [p.get_height() for p in positives] == [1, 2]
    assert [p.get_y() for p in positives] == [3, 1]  # stacked on the negatives
