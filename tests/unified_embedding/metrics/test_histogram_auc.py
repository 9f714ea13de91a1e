"""The validation AUC of `ue train` (`streaming.HistogramAUC`, refined by
`training.callbacks.refine_auc`): within its reported bound of the exact AUC (the Mann-Whitney
oracle `exact.roc_auc`; scikit-learn is not installed), and that bound at most AUC_MAX_BOUND, on
low-CTR scores over wide and narrow logit ranges, on one device and across two replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from unified_embedding.metrics.exact import roc_auc
from unified_embedding.metrics.histogram import (
    AUC_MAX_BOUND,
    BINS,
    histogram_auc,
    logit_bins,
    refined_auc,
    refinement_window,
)
from unified_embedding.metrics.streaming import HistogramAUC
from unified_embedding.metrics.summary import ScoreSummary
from unified_embedding.training.callbacks import refine_auc

ROWS = 20_000


def low_ctr_logits(seed: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """(labels, float32 logits): ~1% positives, every probability below 0.1, scores carrying
    some signal; `spread` is the logits' standard deviation (0.001: a model that has barely
    learned)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(ROWS) < 0.01).astype(np.float32)
    logits = -5.0 + spread * (rng.normal(size=ROWS) + 0.6 * labels)
    logits = np.minimum(logits, np.log(0.099 / 0.901)).astype(np.float32)
    assert 1.0 / (1.0 + np.exp(-logits.max())) < 0.1
    return labels, logits


def identity_model() -> keras.Model:
    """Its output is its input: evaluating it on (logits, labels) evaluates those logits."""
    inputs = keras.Input(shape=(1,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x)(inputs))
    model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=[HistogramAUC()])
    return model


def evaluate_refined(model: keras.Model, labels: np.ndarray, logits: np.ndarray) -> dict:
    data = tf.data.Dataset.from_tensor_slices((logits[:, None], labels[:, None])).batch(1000)
    logs = model.evaluate(data, return_dict=True, verbose=0)
    refine_auc(model, data, None, logs)
    return logs


@pytest.mark.parametrize("spread", [1.0, 0.2])
def test_one_pass_is_within_its_bound_on_wide_low_ctr_scores(spread: float) -> None:
    labels, logits = low_ctr_logits(seed=1, spread=spread)
    metric = HistogramAUC()
    for start in range(0, ROWS, 4096):  # batch by batch
        metric.update_state(labels[start : start + 4096], logits[start : start + 4096])
    auc, bound = histogram_auc(*metric.histograms())
    assert auc is not None and bound is not None
    exact = roc_auc(labels, logits)
    assert bound <= AUC_MAX_BOUND
    assert abs(auc - exact) <= bound + 1e-9
    assert float(metric.result()) == pytest.approx(auc, abs=1e-6)  # its tensor form
    # The state is `metrics.histogram`'s binning, as `ue evaluate`'s summary counts it.
    bins = logit_bins(logits)
    positives = np.bincount(bins[labels == 1], minlength=BINS)
    negatives = np.bincount(bins[labels == 0], minlength=BINS)
    for counted, expected in zip(metric.histograms(), (positives, negatives), strict=True):
        # float32 logits against float64 edges: a row on an edge may fall in the next bin
        assert counted.sum() == expected.sum()
        assert np.abs(np.cumsum(counted) - np.cumsum(expected)).max() <= 3
    summary = ScoreSummary.of(labels, 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).metrics()
    assert summary is not None
    assert abs(summary["auc"] - exact) <= summary["auc_max_error"] + 1e-9


def test_keras_probability_thresholds_miss_by_far_more_on_the_same_scores() -> None:
    labels, logits = low_ctr_logits(seed=1, spread=1.0)
    keras_auc = keras.metrics.AUC(from_logits=True)
    keras_auc.update_state(labels, logits)
    assert abs(float(keras_auc.result()) - roc_auc(labels, logits)) > 10 * AUC_MAX_BOUND


def test_narrow_scores_are_refined_to_within_the_bound() -> None:
    labels, logits = low_ctr_logits(seed=2, spread=0.001)  # ~4 bins wide
    model = identity_model()
    first = model.evaluate(
        tf.data.Dataset.from_tensor_slices((logits[:, None], labels[:, None])).batch(1000),
        return_dict=True,
        verbose=0,
    )
    _, one_pass_bound = histogram_auc(*model.metrics[-1].histograms())
    assert one_pass_bound is not None and one_pass_bound > 0.05  # one pass cannot order these
    logs = evaluate_refined(model, labels, logits)
    exact = roc_auc(labels, logits)
    assert logs["auc_bound"] <= AUC_MAX_BOUND
    assert abs(logs["auc"] - exact) <= logs["auc_bound"] + 1e-9
    # The window is reset: the next evaluation counts every bin again.
    assert model.evaluate(
        tf.data.Dataset.from_tensor_slices((logits[:, None], labels[:, None])).batch(1000),
        return_dict=True,
        verbose=0,
    )["auc"] == pytest.approx(first["auc"])


def test_refinement_combines_two_clusters_and_the_rows_outside_the_window() -> None:
    # Scores in three places: a narrow cluster of ties far below, one tight cluster holding
    # most rows, a wide tail above; the window must cover the tight cluster only.
    rng = np.random.default_rng(3)
    labels = (rng.random(ROWS) < 0.05).astype(np.float64)
    share = rng.random(ROWS)
    tight = -3.0 + 0.0005 * (rng.normal(size=ROWS) + 0.5 * labels)
    wide = rng.normal(size=ROWS) + labels
    logits = np.select([share < 0.02, share < 0.9], [np.full(ROWS, -9.0), tight], wide)
    logits = logits.astype(np.float32)
    bins = logit_bins(logits)
    coarse = (
        np.bincount(bins[labels == 1], minlength=BINS),
        np.bincount(bins[labels == 0], minlength=BINS),
    )
    window = refinement_window(*coarse)
    assert window is not None
    first, last = window
    low, high = (-16.0 + b * 32.0 / BINS for b in (first, last + 1))
    assert -4.0 < low < -3.0 < high < -2.0  # the tight cluster, not the ties at -9
    inside = (bins >= first) & (bins <= last)
    fine_bins = np.clip(
        ((logits[inside] - low) * (BINS / (high - low))).astype(np.int64), 0, BINS - 1
    )
    fine = (
        np.bincount(fine_bins[labels[inside] == 1], minlength=BINS),
        np.bincount(fine_bins[labels[inside] == 0], minlength=BINS),
    )
    auc, bound = refined_auc(coarse, window, fine)
    assert auc is not None and bound is not None
    assert bound <= AUC_MAX_BOUND
    assert abs(auc - roc_auc(labels, logits)) <= bound + 1e-9


def test_no_refinement_when_the_bound_is_met_or_a_class_is_absent() -> None:
    labels, logits = low_ctr_logits(seed=4, spread=1.0)
    bins = logit_bins(logits)
    positives = np.bincount(bins[labels == 1], minlength=BINS)
    negatives = np.bincount(bins[labels == 0], minlength=BINS)
    assert refinement_window(positives, negatives) is None
    assert refinement_window(np.zeros(BINS), negatives) is None
    metric = HistogramAUC()
    metric.update_state(np.zeros(10), np.zeros(10))
    assert np.isnan(float(metric.result()))


def check_two_replicas_refine_like_one_device() -> None:
    """Run in a fresh process: logical devices must be set before TensorFlow initializes."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    for spread in (1.0, 0.001):
        labels, logits = low_ctr_logits(seed=5, spread=spread)
        with mirrored.scope():
            model = identity_model()
        logs = evaluate_refined(model, labels, logits)
        single = evaluate_refined(identity_model(), labels, logits)
        assert logs["auc_bound"] <= AUC_MAX_BOUND, logs
        assert abs(logs["auc"] - roc_auc(labels, logits)) <= logs["auc_bound"] + 1e-9
        assert logs["auc"] == single["auc"] and logs["auc_bound"] == single["auc_bound"]


def test_two_replicas_sum_their_histograms(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYTHONDONTWRITEBYTECODE": "1"}
    code = "import test_histogram_auc as t; t.check_two_replicas_refine_like_one_device()"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{env['PYTHONPATH']}"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
