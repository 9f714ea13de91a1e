"""`ue export`: a SavedModel that takes raw features and hashes in-graph with the shared function.

    <export-base>/<version>/            version = unix seconds, or the newest + 1 when that is
                                        larger (`versions.next_version`: within int64)
        saved_model.pb, variables/, assets/spec.json,
        assets.extra/tf_serving_warmup_requests   TF Serving warmup: PredictionLogs replayed
                                                  by a server before the version takes traffic

Signatures (all return `probability` (batch,)):
    serving_default  one input per field, named as the schema names it: categorical and
                     multi-valued fields as strings (multi-valued joined by the separator),
                     numeric fields as float32 (NaN = missing)
    from_examples    `examples`: serialized tf.train.Example with those raw features
    from_ids         the pipeline's encoded features (fingerprints, transformed numerics)
    packed           `categorical` (batch, categorical fields) strings and `numeric`
                     (batch, numeric fields) float32, columns in spec order: the fast path
    attention        raw features -> `attention` (batch, layers, heads, fields, fields)
    encode           raw features -> the fingerprints the pipeline writes (skew checks)
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from unified_embedding.contract.artifacts import (
    LENGTHS_SUFFIX,
    SPEC_FILE,
    WARMUP_FILE,
)
from unified_embedding.contract.features import encode_features, encode_packed
from unified_embedding.contract.kinds import kind_of
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.exported import versions
from unified_embedding.exported.versions import parse_version as parse_version  # re-exported
from unified_embedding.models.autoint import AutoInt

Tensors = dict[str, tf.Tensor]
WARMUP_BATCH_SIZES = (1, 64)  # the first call of each batch shape pays for graph set-up


def raw_signature(spec: FeatureSpec) -> dict[str, tf.TensorSpec]:
    return {f.name: tf.TensorSpec([None], kind_of(f).raw_dtype, f.name) for f in spec.fields}


def ids_signature(spec: FeatureSpec) -> dict[str, tf.TensorSpec | tf.RaggedTensorSpec]:
    return {f.name: kind_of(f).ids_spec(f) for f in spec.fields}


def example_features(spec: FeatureSpec) -> dict[str, tf.io.FixedLenFeature]:
    """Raw features in a tf.train.Example; an absent feature is a missing value."""
    return {f.name: kind_of(f).example_feature() for f in spec.fields}


class ServingModule(tf.Module):
    """The trained model plus the contract, with the exported signatures as methods."""

    def __init__(self, model: AutoInt, spec: FeatureSpec, spec_path: str) -> None:
        super().__init__()
        self.model = model
        self.spec = spec
        self.spec_asset = tf.saved_model.Asset(spec_path)

    def score(self, raw: Tensors) -> Tensors:
        return self.score_ids(encode_features(self.spec, raw))

    def score_ids(self, ids: Tensors) -> Tensors:
        return {"probability": self.model.probabilities(ids)[:, 0]}

    def score_examples(self, examples: tf.Tensor) -> Tensors:
        return self.score(tf.io.parse_example(examples, example_features(self.spec)))

    def score_packed(self, categorical: tf.Tensor, numeric: tf.Tensor) -> Tensors:
        return self.score_ids(encode_packed(self.spec, categorical, numeric))

    def attention(self, raw: Tensors) -> Tensors:
        scores = self.model.attention_scores(encode_features(self.spec, raw))
        return {"attention": tf.stack(scores, axis=1)}

    def encode(self, raw: Tensors) -> Tensors:
        out = {}
        for name, value in encode_features(self.spec, raw).items():
            if isinstance(value, tf.RaggedTensor):  # signatures return dense tensors
                out[name] = value.flat_values
                out[name + LENGTHS_SUFFIX] = value.row_lengths()
            else:
                out[name] = value
        return out


def _keyword(method: Callable[[Tensors], Tensors]) -> Callable[..., Tensors]:
    """Signatures are called with keyword arguments, one per input."""
    return lambda **features: method(features)


def signatures(module: ServingModule) -> dict[str, Any]:
    spec = module.spec
    raw = raw_signature(spec)
    categorical, numeric = len(spec.categorical_fields), len(spec.numeric_fields)
    return {
        "serving_default": tf.function(_keyword(module.score)).get_concrete_function(**raw),
        "from_ids": tf.function(_keyword(module.score_ids)).get_concrete_function(
            **ids_signature(spec)
        ),
        "from_examples": tf.function(module.score_examples).get_concrete_function(
            tf.TensorSpec([None], tf.string, "examples")
        ),
        "packed": tf.function(module.score_packed).get_concrete_function(
            tf.TensorSpec([None, categorical], tf.string, "categorical"),
            tf.TensorSpec([None, numeric], tf.float32, "numeric"),
        ),
        "attention": tf.function(_keyword(module.attention)).get_concrete_function(**raw),
        "encode": tf.function(_keyword(module.encode)).get_concrete_function(**raw),
    }


def warmup_inputs(spec: FeatureSpec, batch_size: int) -> dict[str, np.ndarray]:
    """A batch of `serving_default` inputs: alternating present and missing values."""
    present = np.arange(batch_size) % 2 == 0
    return {f.name: kind_of(f).warmup_values(f, present) for f in spec.fields}


def warmup_logs(spec: FeatureSpec, model_name: str = "default") -> list[bytes]:
    """Serialized `PredictionLog`s in TF Serving's warmup format for `serving_default`."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    logs = []
    for batch_size in WARMUP_BATCH_SIZES:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default")
        )
        for name, values in warmup_inputs(spec, batch_size).items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
        log = prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)
        )
        logs.append(log.SerializeToString())
    return logs


def write_warmup(spec: FeatureSpec, saved_model_dir: Path) -> Path:
    path = saved_model_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_logs(spec):
            writer.write(log)
    return path


class _KerasConfigNotes(logging.Filter):
    """Drops tf.saved_model.save's notes about Keras configs: the export is read through its
    signatures (`tf.saved_model.load`, TF Serving), never rebuilt by `keras.models.load_model`,
    so neither the model's `get_config` nor the training-only (never built) TFRS task is needed.
    Any other warning passes."""

    NOTES = (
        "Skipping full serialization of TF-Keras layer",
        "arguments contain non-serializable objects",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(note in record.getMessage() for note in self.NOTES)


@contextlib.contextmanager
def _without_keras_config_notes() -> Iterator[None]:
    logger, note_filter = logging.getLogger("tensorflow"), _KerasConfigNotes()
    logger.addFilter(note_filter)
    try:
        yield
    finally:
        logger.removeFilter(note_filter)


def export(model: AutoInt, spec: FeatureSpec, export_base: str | Path) -> Path:
    """Writes a new version under `export_base` and returns its path.

    The version is written whole into a hidden staging folder of the same base, then renamed
    to its number, so a server polling the base sees either nothing or the complete version.
    A failed export removes its staging folder."""
    base = Path(export_base)
    base.mkdir(parents=True, exist_ok=True)
    versions.next_version(base)  # refuse before the slow part when int64 has no version left
    staging = versions.staging_folder(base, "export")
    staging.mkdir()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            spec_path = Path(tmp) / SPEC_FILE
            spec.save(spec_path)
            module = ServingModule(model, spec, str(spec_path))
            with _without_keras_config_notes():
                tf.saved_model.save(module, str(staging), signatures=signatures(module))
        write_warmup(spec, staging)
        return versions.publish(staging, base)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
