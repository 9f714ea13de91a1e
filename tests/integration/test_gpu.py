"""On a GPU: the training step runs there (float32 and each mixed precision), and the exported
SavedModel scores what the in-memory model scores, on the GPU and again on a CPU.

Every test here is marked `gpu` and skipped where TensorFlow sees no GPU (`pytest -m gpu` runs
only these). They reuse the session's `exported_model` (tests/conftest.py: generate ->
preprocess -> `ue train`'s `train` -> `ue export`), which trains on the GPU when there is one:
TensorFlow's default placement, as `ue train` leaves it.
"""

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from unified_embedding.contract.features import encode_features
from unified_embedding.contract.schemas import criteo
from unified_embedding.exported.model import ExportedModel as LoadedModel
from unified_embedding.exported.model import raw_batches
from unified_embedding.rows.reader import parse_bytes
from unified_embedding.training.precision import has_native_bfloat16

ROOT = Path(__file__).resolve().parents[2]
GPUS = tf.config.list_physical_devices("GPU")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not GPUS, reason="no GPU: tf.config.list_physical_devices('GPU') is empty"),
]

# Scores of an export with every GPU hidden: argv = version folder, rows file, output .npy.
CPU_SCORES = """
import sys
import numpy as np
from unified_embedding.contract.schemas import criteo
from unified_embedding.exported.model import ExportedModel
from unified_embedding.rows.reader import parse_bytes
model = ExportedModel.load(sys.argv[1])
rows = parse_bytes(criteo(), open(sys.argv[2], "rb").read())
np.save(sys.argv[3], model.score_rows(rows))
"""


@pytest.fixture
def full_float32() -> Iterator[None]:
    """TensorFloat-32 off while scores are compared: from Ampere on TensorFlow rounds float32
    matmul inputs to a 10-bit mantissa by default, so two graphs of the same model (or a GPU
    and a CPU) would differ by ~1e-3 instead of float32's ~1e-6."""
    enabled = tf.config.experimental.tensor_float_32_execution_enabled()
    tf.config.experimental.enable_tensor_float_32_execution(False)
    yield
    tf.config.experimental.enable_tensor_float_32_execution(enabled)


@pytest.fixture(scope="module")
def device_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("device", ROOT / "benchmarks" / "device.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["device"] = module
    spec.loader.exec_module(module)
    return module


def scores_in_memory(exported_model: Any) -> np.ndarray:
    spec = exported_model.spec
    rows = parse_bytes(criteo(), exported_model.rows_file.read_bytes())
    (raw,) = raw_batches(spec, rows, batch_size=len(rows))
    # As a graph, like the export: eager mixed precision rounds between ops a graph fuses.
    probabilities = tf.function(exported_model.model.probabilities)
    return probabilities(encode_features(spec, raw)).numpy()[:, 0]


def test_the_trained_model_lives_on_the_gpu(exported_model: Any) -> None:
    model = exported_model.model
    assert "GPU" in model.embedding.tables[0].device
    assert all("GPU" in v.device for v in model.trainable_variables)


def test_the_export_scores_what_the_in_memory_model_scores(
    exported_model: Any, full_float32: None
) -> None:
    expected = scores_in_memory(exported_model)
    loaded = LoadedModel.load(exported_model.version)
    rows = parse_bytes(criteo(), exported_model.rows_file.read_bytes())
    np.testing.assert_allclose(loaded.score_rows(rows), expected, rtol=1e-5, atol=1e-6)
    spec = exported_model.spec
    (raw,) = raw_batches(spec, rows, batch_size=len(rows))
    packed = loaded.score_packed(
        tf.stack([raw[f.name] for f in spec.categorical_fields], 1).numpy(),
        tf.stack([raw[f.name] for f in spec.numeric_fields], 1).numpy(),
    )
    np.testing.assert_allclose(packed, expected, rtol=1e-5, atol=1e-6)


def test_the_export_scores_the_same_without_a_gpu(
    exported_model: Any, full_float32: None, tmp_path: Path
) -> None:
    """Trained and exported on a GPU, served on CPUs: the same scores."""
    out = tmp_path / "cpu.npy"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [str(exported_model.version), str(exported_model.rows_file), str(out)]
    done = subprocess.run(
        [sys.executable, "-c", CPU_SCORES, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = LoadedModel.load(exported_model.version)
    on_gpu = loaded.score_rows(parse_bytes(criteo(), exported_model.rows_file.read_bytes()))
    np.testing.assert_allclose(np.load(out), on_gpu, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_the_training_step_runs_on_the_gpu(device_bench: ModuleType, precision: str) -> None:
    """benchmarks/device.py's model and step (mixed_float16 with dynamic loss scaling): a few
    steps on the GPU update the table there and keep the loss finite."""
    if precision == "mixed_bfloat16" and not has_native_bfloat16():
        pytest.skip("this GPU has no native bfloat16 (compute capability < 8)")
    from unified_embedding.contract.spec import TableSpec
    from unified_embedding.training.config import TrainConfig

    spec = criteo().replace(table=TableSpec(rows=2**16, width=8))
    features = device_bench.bench.encoded_rows(2048, 0, spec)
    model = device_bench.build(spec, precision)
    device_bench.compile_on(model, features, precision, TrainConfig(256, seed=0))
    table = model.embedding.tables[0]
    assert "GPU" in table.device
    before = table.numpy().copy()
    dataset = tf.data.Dataset.from_tensor_slices(dict(features)).batch(256)
    history = model.fit(dataset, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.array_equal(table.numpy(), before)
    if precision == "mixed_float16":
        assert model.interaction.compute_dtype == "float16"
        assert 1.0 <= float(model.optimizer.loss_scale) < np.inf
