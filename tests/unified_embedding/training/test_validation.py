"""Honest validation: the eval share chosen from the positives (`--eval-share` auto), what
early stopping watches (`--early-stop-on auc|logloss`, the kept weights and the plateau decay
follow it) and the validation AUC's bound in the summary."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tf_keras as keras

from pipelines.preprocess import run as preprocess
from unified_embedding.metrics.histogram import AUC_MAX_BOUND
from unified_embedding.models.autoint import AutoIntConfig
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.callbacks import DecayOnPlateau, monitor_of
from unified_embedding.training.cli import build_parser, job_from
from unified_embedding.training.config import TrainConfig
from unified_embedding.training.eval_rows import (
    AUTO_EVAL_POSITIVES,
    AUTO_EVAL_SHARE_CAP,
    SplitCounts,
    auto_eval_share,
    evaluated_positives,
    resolve_eval_share,
)
from unified_embedding.training.loop import TrainJob, train


def test_auto_share_reaches_the_target_positives_within_the_cap() -> None:
    train_split = SplitCounts(rows=200_000, positives=2_000.0)  # 1% CTR
    few = SplitCounts(rows=2_200, positives=22.0)
    share = auto_eval_share(train_split, few)
    assert share == pytest.approx(0.089)  # (200 - 22) / 2000
    assert evaluated_positives(train_split, few, share) == pytest.approx(AUTO_EVAL_POSITIVES)
    assert auto_eval_share(train_split, SplitCounts(20_000, 250.0)) == 0.0
    rare = SplitCounts(rows=200_000, positives=300.0)
    assert auto_eval_share(rare, few) == AUTO_EVAL_SHARE_CAP
    assert auto_eval_share(SplitCounts(100, 0.0), few) == 0.0


def test_a_given_share_is_kept_and_auto_says_what_it_chose() -> None:
    train_split, few = SplitCounts(200_000, 2_000.0), SplitCounts(2_200, 22.0)
    assert resolve_eval_share(0.0, train_split, few) == (0.0, "given")
    share, rule = resolve_eval_share(None, train_split, few)
    assert share == pytest.approx(0.089)
    assert "22 positives" in rule and "0.089" in rule
    assert resolve_eval_share(None, train_split, SplitCounts(20_000, 250.0))[0] == 0.0


def test_flags_default_to_auto_and_auc() -> None:
    job = job_from(build_parser().parse_args(["--data", "d", "--model-dir", "m"]))
    assert job.eval_share is None and job.early_stop_on == "auc"
    job = job_from(
        build_parser().parse_args(["--data", "d", "--model-dir", "m", "--early-stop-on", "logloss"])
    )
    assert job.early_stop_on == "logloss"
    assert monitor_of("logloss") == ("val_logloss", "min")
    assert monitor_of("auc") == ("val_auc", "max")
    with pytest.raises(ValueError, match="`--early-stop-on` should be one of"):
        TrainJob("d", "m", early_stop_on="loss")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--data", "d", "--model-dir", "m", "--early-stop-on", "x"])


def test_plateau_decay_follows_a_lower_is_better_monitor() -> None:
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    decay = DecayOnPlateau(0.5, "val_logloss", "min")
    decay.set_model(model)
    decay.on_train_begin()
    for epoch, value in enumerate([0.50, 0.40, 0.39]):  # every evaluation better
        decay.on_epoch_end(epoch, {"val_logloss": value})
    assert float(model.optimizer.learning_rate) == 1.0
    decay.on_epoch_end(3, {"val_logloss": 0.45})  # worse: decays
    assert float(model.optimizer.learning_rate) == 0.5
    with pytest.raises(ValueError, match="`mode` should be"):
        DecayOnPlateau(0.5, "val_logloss", "lowest")


@pytest.fixture(scope="module")
def prep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 generated rows at a ~3% label rate, 5% of them in eval: a handful of positives."""
    tmp = tmp_path_factory.mktemp("validation")
    raw = tmp / "rows.tsv"
    raw.write_bytes(generate(3000, SyntheticConfig(seed=4, label_rate=0.03)).to_tsv_bytes())
    out = tmp / "prep"
    preprocess(
        ["--input", str(raw), "--schema", "criteo", "--output", str(out), "--eval-fraction", "0.05"]
    )
    return out


def small_job(prep: Path, model_dir: Path, **changes: object) -> TrainJob:
    job = TrainJob(
        str(prep),
        str(model_dir),
        budget="50KB",
        steps=16,
        eval_every=2,
        checkpoint_every=4,
        batch_size=128,
        patience=8,
        refit_output_bias=False,  # the final evaluation then scores the kept weights as is
        model=AutoIntConfig(num_layers=1, num_heads=1, head_dim=8),
        # a large step: the validation log loss rises and falls between evaluations
        optimizer=TrainConfig(learning_rate=0.05),
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def test_training_holds_out_rows_by_default_and_reports_the_bounded_auc(
    prep: Path, tmp_path: Path
) -> None:
    stats = json.loads((prep / "stats.json").read_text())
    positives = stats["positives_by_split"]
    assert positives["eval"] < AUTO_EVAL_POSITIVES
    summary = train(small_job(prep, tmp_path / "m", steps=4))
    expected = auto_eval_share(
        SplitCounts(stats["rows_by_split"]["train"], positives["train"]),
        SplitCounts(stats["rows_by_split"]["eval"], positives["eval"]),
    )
    assert summary["eval_share"] == expected > 0
    assert summary["eval_share_rule"].startswith("auto:")
    assert summary["eval_positives"] > positives["eval"]
    bounds = summary["val_history"]["val_auc_bound"]
    assert len(bounds) == 2 and max(bounds) <= AUC_MAX_BOUND
    assert 0.0 <= summary["eval"]["auc_bound"] <= AUC_MAX_BOUND


@pytest.mark.parametrize("watch", ["logloss", "auc"])
def test_early_stopping_keeps_the_best_evaluation_of_what_it_watches(
    prep: Path, tmp_path: Path, watch: str
) -> None:
    summary = train(small_job(prep, tmp_path / watch, early_stop_on=watch, eval_share=0.2))
    history = summary["val_history"]
    assert summary["early_stop_on"] == watch
    if watch == "logloss":
        kept = int(np.argmin(history["val_logloss"]))
        assert summary["eval"]["logloss"] == pytest.approx(history["val_logloss"][kept], rel=1e-5)
    else:
        kept = int(np.argmax(history["val_auc"]))
        assert summary["eval"]["auc"] == pytest.approx(history["val_auc"][kept], abs=1e-6)
    assert summary["eval"]["logloss"] == pytest.approx(history["val_logloss"][kept], rel=1e-5)
