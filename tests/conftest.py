"""Pytest configuration: environment that must be set before TensorFlow is imported, and a tiny
exported model shared by the serving tests."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import unified_embedding  # noqa: F401  sets TF_USE_LEGACY_KERAS before a test imports TensorFlow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass(frozen=True)
class ExportedModel:
    """A small trained AutoInt exported once per test session (see `exported_model`)."""

    model: Any  # unified_embedding.models.autoint.AutoInt
    spec: Any  # unified_embedding.contract.spec.FeatureSpec
    rows_file: Path  # Criteo-format rows (held out from training)
    export_base: Path
    version: Path


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory: pytest.TempPathFactory) -> ExportedModel:
    """generate -> preprocess -> train a few dozen steps -> export (as the end-to-end test
    tests/integration/test_train_export.py does)."""
    from pipelines.preprocess import run as preprocess
    from unified_embedding.exported.writer import export
    from unified_embedding.models.config import AutoIntConfig
    from unified_embedding.synthetic import SyntheticConfig, generate
    from unified_embedding.training.loop import TrainJob, load_trained, train

    tmp = tmp_path_factory.mktemp("served")
    config = SyntheticConfig(seed=7, weighted_top_k=3, signal_scale=2.0)
    train_file, rows_file = tmp / "train.tsv", tmp / "rows.tsv"
    train_file.write_bytes(generate(1500, config).to_tsv_bytes())
    rows_file.write_bytes(generate(200, config, start_row=1500).to_tsv_bytes())
    prep = tmp / "prep"
    preprocess(
        [
            "--input",
            str(train_file),
            "--schema",
            "criteo",
            "--output",
            str(prep),
            "--eval-fraction",
            "0.2",
        ]
    )
    job = TrainJob(
        str(prep),
        str(tmp / "model"),
        budget="100KB",
        steps=30,
        eval_every=30,
        checkpoint_every=30,
        batch_size=128,
        model=AutoIntConfig(),
    )
    train(job)
    model, run = load_trained(job.model_dir)
    spec = run.feature_spec()
    version = export(model, spec, tmp / "export")
    return ExportedModel(model, spec, rows_file, tmp / "export", version)


@pytest.fixture(scope="session")
def running_server(exported_model: ExportedModel):  # type: ignore[no-untyped-def]
    """A server on a free loopback port over `exported_model`'s export base (metrics on)."""
    from serving.model_manager import ManagerConfig
    from serving.server import BackgroundServer, ServerConfig

    config = ServerConfig(
        ManagerConfig(exported_model.export_base, poll_seconds=0.2),
        port=0,
        metrics_port=0,
        grace_seconds=2.0,
    )
    with BackgroundServer(config) as server:
        yield server
