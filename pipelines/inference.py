"""Beam's RunInference over an exported SavedModel, one block of rows per model call.

    blocks | RunInference(BlockModelHandler(version_path, spec, explain_top_k=0))
    # -> PredictionResult(example=CheckedBlock, inference=BlockScores)

The handler loads the SavedModel once per worker process (RunInference keeps it in Beam's
`Shared` cache, used by all the process's threads) and traces one graph: the valid rows' Arrow
string columns, packed by `arrow_tensors.pack_strings`, are cut into string tensors, numeric
fields parsed as `ue evaluate` parses them, and the raw-feature signature `serving_default`
(and `attention` for explanations) called once per block. No Python runs per row.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from unified_embedding.contract import artifacts
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.validation import CheckedBlock

SAVED_MODEL = artifacts.SAVED_MODEL_FILE


@dataclass(frozen=True)
class ModelVersion:
    """An exported SavedModel: its folder, its version (the folder's name, a number in the
    `ue export` layout) and its spec."""

    path: str
    version: int | str
    spec: FeatureSpec


def resolve_model(path: str) -> ModelVersion:
    """`path` itself when it holds a SavedModel, else its newest numeric version folder (the
    `ue export` layout). Works on any Beam filesystem (local, gs://, ...)."""
    path = path.rstrip("/")
    if not FileSystems.exists(f"{path}/{SAVED_MODEL}"):
        found = FileSystems.match([f"{path}/*/{SAVED_MODEL}"])[0].metadata_list
        versions = [m.path[: -len(SAVED_MODEL) - 1] for m in found]
        newest = artifacts.newest_version(versions)
        if newest is None:
            raise FileNotFoundError(
                f"no SavedModel at `--model {path}` nor in numeric version folders under it"
            )
        path = newest
    with FileSystems.open(f"{path}/{artifacts.SPEC_ASSET}") as f:
        spec = FeatureSpec.from_json(f.read().decode("utf-8"))
    name = artifacts.version_name(path)
    version = artifacts.parse_version(name)
    return ModelVersion(path, name if version is None else version, spec)


@dataclass(frozen=True)
class BlockPredictions:
    """The model's answer for the valid rows of one block. `pairs`: per row, the indexes
    `source * fields + target` of the `k` field pairs with the largest attention weight
    (mean over layers and heads, a field with itself left out), strongest first."""

    probability: np.ndarray  # float32 (rows,)
    pairs: np.ndarray | None = None  # int32 (rows, k)
    weights: np.ndarray | None = None  # float32 (rows, k)


class BlockScorer:
    """A loaded SavedModel and the traced block graph; thread-safe (TensorFlow calls are)."""

    def __init__(
        self, path: str, spec: FeatureSpec, explain_top_k: int = 0, op_threads: int = 0
    ) -> None:
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TensorFlow is imported
        from unified_embedding.runtime.startup import import_tensorflow_quietly

        import_tensorflow_quietly()  # a worker process: no "no GPU here" lines per worker
        import tensorflow as tf

        from serving.predictor import set_op_threads
        from unified_embedding.contract.kinds import kind_of

        if op_threads and not set_op_threads(op_threads):
            logging.warning("TensorFlow already runs in this process: --op-threads is ignored")

        self.spec = spec
        self._loaded = tf.saved_model.load(path)  # keeps the variables alive
        serve = self._loaded.signatures["serving_default"]
        attention = self._loaded.signatures["attention"] if explain_top_k else None
        fields = len(spec.fields)
        k = min(explain_top_k, fields * (fields - 1))

        def score(data: tf.Tensor, starts: tf.Tensor, lengths: tf.Tensor) -> dict[str, tf.Tensor]:
            cells = tf.reshape(tf.strings.substr(data, starts, lengths), [fields, -1])
            raw = {f.name: kind_of(f).from_text(cells[i]) for i, f in enumerate(spec.fields)}
            out = {"probability": serve(**raw)["probability"]}
            if attention is not None:
                # (rows, layers, heads, fields, fields) -> (rows, fields, fields)
                weights = tf.reduce_mean(attention(**raw)["attention"], axis=[1, 2])
                diagonal = tf.fill(tf.shape(weights)[:2], tf.constant(-np.inf, weights.dtype))
                weights = tf.linalg.set_diag(weights, diagonal)
                top = tf.math.top_k(tf.reshape(weights, [-1, fields * fields]), k=k)
                out["pairs"], out["weights"] = top.indices, top.values
            return out

        vector = tf.TensorSpec([None], tf.int64)  # fields x rows, one field after another
        self._score = tf.function(
            score, input_signature=[tf.TensorSpec([], tf.string), vector, vector]
        )

    def __call__(self, checked: CheckedBlock) -> BlockPredictions:
        from unified_embedding.rows.arrow_tensors import pack_strings

        if not len(checked.rows):
            return BlockPredictions(np.zeros(0, np.float32))
        data, starts, lengths = pack_strings([checked.columns[f.name] for f in self.spec.fields])
        out = {k: v.numpy() for k, v in self._score(data, starts, lengths).items()}
        return BlockPredictions(out["probability"], out.get("pairs"), out.get("weights"))


class BlockModelHandler(ModelHandler[CheckedBlock, PredictionResult, BlockScorer]):
    """RunInference's handler: one CheckedBlock per call (the block is the batch).

    Args:
        path: the SavedModel version folder (see `resolve_model`).
        spec: its spec (only the fields are used; they must be columns of the input).
        explain_top_k: also return each row's `k` strongest attention field pairs (0: none).
        op_threads: TensorFlow's intra- and inter-op threads in each worker process (0: its
            default, all cores). 1 with one worker process per core: a block's matrices are
            too small for two threads to speed a call up (measured: the same rows/s).
    """

    def __init__(
        self, path: str, spec: FeatureSpec, explain_top_k: int = 0, op_threads: int = 0
    ) -> None:
        # Blocks already hold thousands of rows: BatchElements must not group them further.
        super().__init__(min_batch_size=1, max_batch_size=1)
        if explain_top_k < 0:
            raise ValueError(
                f"`explain_top_k` should be non-negative. Received: `explain_top_k={explain_top_k}`"
            )
        self._path = path
        self._spec_json = spec.to_json()
        self._explain_top_k = explain_top_k
        self._op_threads = op_threads

    def load_model(self) -> BlockScorer:
        spec = FeatureSpec.from_json(self._spec_json)
        return BlockScorer(self._path, spec, self._explain_top_k, self._op_threads)

    def run_inference(
        self,
        batch: Sequence[CheckedBlock],
        model: BlockScorer,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[PredictionResult]:
        return [PredictionResult(checked, model(checked), self._path) for checked in batch]

    def get_num_bytes(self, batch: Sequence[CheckedBlock]) -> int:
        return sum(len(checked.block.data) for checked in batch)  # the default pickles the batch

    def get_metrics_namespace(self) -> str:
        return "score"
