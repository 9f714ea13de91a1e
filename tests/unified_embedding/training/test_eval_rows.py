"""Honest early stopping: the few-positives warning, `--eval-share` (held-out train rows are
evaluated and never trained on), split counts, and the output bias from the train label rate."""

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines.preprocess import run as preprocess
from unified_embedding.models.autoint import AutoIntConfig, output_bias_for
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.data import load_data_spec, training_dataset
from unified_embedding.training.eval_rows import (
    MIN_EVAL_POSITIVES,
    SplitCounts,
    evaluated_positives,
    held_out,
    kept_for_training,
    split_counts,
    warn_if_few_positives,
)
from unified_embedding.training.inputs import fit_inputs
from unified_embedding.training.loop import TrainJob, train
from unified_embedding.training.run import RunConfig

ROWS = 2000


@pytest.fixture(scope="module")
def prep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 generated rows at a ~5% label rate, 5% of them in eval: a handful of positives."""
    tmp = tmp_path_factory.mktemp("eval_rows")
    raw = tmp / "rows.tsv"
    raw.write_bytes(generate(ROWS, SyntheticConfig(seed=2, label_rate=0.05)).to_tsv_bytes())
    out = tmp / "prep"
    preprocess(
        ["--input", str(raw), "--schema", "criteo", "--output", str(out), "--eval-fraction", "0.05"]
    )
    return out


def row_keys(data: tf.data.Dataset) -> list[bytes]:
    """One byte string per row: its C1..C26 fingerprints (rows are told apart by content)."""
    keys = []
    for batch in data:
        ids = np.concatenate([batch[f"C{i}"].numpy() for i in range(1, 27)], axis=1)
        keys.extend(row.tobytes() for row in ids)
    return keys


def test_split_counts_from_stats_json_equal_a_pass_over_the_records(
    prep: Path, tmp_path: Path
) -> None:
    spec = load_data_spec(prep)
    stats = json.loads((prep / "stats.json").read_text())
    assert sum(stats["positives_by_split"].values()) == pytest.approx(
        stats["label_rate"] * stats["rows_valid"]
    )
    old = tmp_path / "old"  # stats.json as written before positives_by_split
    shutil.copytree(prep, old)
    del stats["positives_by_split"]
    (old / "stats.json").write_text(json.dumps(stats))
    for split in ("train", "eval"):
        assert split_counts(spec, old, split) == split_counts(spec, prep, split)
    train_counts = split_counts(spec, prep, "train")
    assert train_counts.rows == stats["rows_by_split"]["train"]
    assert 0.02 < train_counts.label_rate < 0.1


def test_held_out_rows_are_evaluated_and_never_trained_on(prep: Path, tmp_path: Path) -> None:
    spec = load_data_spec(prep)
    share = 0.3
    everything = row_keys(training_dataset(spec, prep, "train", 4096, shuffle=False))
    trained = row_keys(
        training_dataset(
            spec, prep, "train", 4096, shuffle=True, seed=1, keep=kept_for_training(share)
        )
    )
    job = TrainJob(str(prep), str(tmp_path / "m"), eval_share=share)
    evaluated = row_keys(fit_inputs(job, spec).evaluation)
    eval_split = row_keys(training_dataset(spec, prep, "eval", 4096, shuffle=False))
    assert evaluated[: len(eval_split)] == eval_split  # the eval split, then the held-out rows
    held = evaluated[len(eval_split) :]
    assert not set(trained) & set(held)
    assert sorted(trained + held) == sorted(everything)
    assert abs(len(held) / len(everything) - share) < 0.05
    assert kept_for_training(0.0) is None


def test_held_out_is_a_fraction_of_a_fingerprint_independent_of_row_order() -> None:
    ids = tf.constant(np.arange(4000, dtype=np.int64).reshape(2000, 2))
    block = {"label": tf.zeros((2000, 1)), "c": ids, "n": tf.linspace(0.0, 1.0, 2000)}
    mask = held_out(block, 0.25).numpy()
    assert 0.22 < mask.mean() < 0.28
    reversed_block = {k: tf.reverse(v, [0]) for k, v in block.items()}
    np.testing.assert_array_equal(held_out(reversed_block, 0.25).numpy(), mask[::-1])
    assert not held_out(block, 0.0).numpy().any()
    # A larger share holds out a superset: rows only move from training into evaluation.
    assert np.all(held_out(block, 0.5).numpy()[mask])
    ragged = {
        **block,
        "m": tf.RaggedTensor.from_row_lengths(tf.ones((4000, 1), tf.int64), tf.fill([2000], 2)),
    }
    assert held_out(ragged, 0.25).shape == (2000,)


def test_few_positives_warn_with_the_count_and_the_flag(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert warn_if_few_positives(23, 0.0) is not None
    assert "hold 23 positives (fewer than 100)" in caplog.text
    assert "--eval-share 0.2" in caplog.text
    assert "a larger `--eval-share` than 0.2" in str(warn_if_few_positives(40, 0.2))
    assert warn_if_few_positives(MIN_EVAL_POSITIVES, 0.0) is None
    counts = evaluated_positives(SplitCounts(1000, 50.0), SplitCounts(100, 5.0), 0.2)
    assert counts == pytest.approx(15.0)


def test_eval_share_must_be_a_fraction(tmp_path: Path) -> None:
    for share in (-0.1, 1.0):
        with pytest.raises(
            ValueError, match=f"`--eval-share` should be in \\[0, 1\\). Received: `{share}`"
        ):
            TrainJob("data", str(tmp_path), eval_share=share)


def test_train_warns_holds_out_and_starts_from_the_label_rate(
    prep: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats = json.loads((prep / "stats.json").read_text())
    eval_positives = stats["positives_by_split"]["eval"]
    assert eval_positives < MIN_EVAL_POSITIVES
    job = TrainJob(
        str(prep),
        str(tmp_path / "m"),
        budget="50KB",
        steps=8,
        eval_every=4,
        checkpoint_every=4,
        batch_size=256,
        eval_share=0.4,
        model=AutoIntConfig(num_layers=1, num_heads=1, head_dim=8),
    )
    with caplog.at_level(logging.WARNING):
        summary = train(job)
    assert "positives (fewer than 100)" in caplog.text
    assert "a larger `--eval-share` than 0.4" in caplog.text
    train_positives = stats["positives_by_split"]["train"]
    assert summary["eval_positives"] == pytest.approx(eval_positives + 0.4 * train_positives)
    assert summary["eval_share"] == 0.4
    assert math.isfinite(summary["output_bias_shift"])
    for name in ("auc", "logloss", "calibration", "ece"):
        assert math.isfinite(summary["eval"][name])
    assert len(summary["val_history"]["val_ece"]) == 2  # one per evaluation
    tags = {  # TensorBoard's validation scalars
        value.tag
        for path in (Path(job.model_dir) / "logs" / "validation").glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }
    assert {"epoch_calibration", "epoch_ece", "epoch_auc"} <= tags
    rate = train_positives / stats["rows_by_split"]["train"]
    assert summary["train_label_rate"] == pytest.approx(rate)
    assert RunConfig.load(job.model_dir).autoint_config().output_bias == pytest.approx(
        output_bias_for(rate)
    )
