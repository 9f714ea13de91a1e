"""Beam's RunInference over an exported SavedModel, one block of rows per model call.

    blocks | RunInference(BlockModelHandler(version_path, spec, explain_top_k=0))
    # -> PredictionResult(example=CheckedBlock, inference=BlockPredictions)

The handler loads the SavedModel once per worker process (`exported.model.ExportedModel`;
RunInference keeps it in Beam's `Shared` cache, used by all the process's threads) and traces
one graph: the valid rows' Arrow string columns, packed by `arrow_tensors.pack_strings`, are cut
into string tensors, numeric fields parsed as `ue evaluate` parses them, and the model's
`probability` (and its strongest field `pairs` for explanations) computed once per block. No
Python runs per row. `resolve_model` finds the version a `--model` path names
(`exported.versions.locate`) on any Beam file system.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from unified_embedding.contract.artifacts import SAVED_MODEL_FILE, SPEC_ASSET
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.exported.versions import Files, ModelFolder, locate
from unified_embedding.rows.validation import CheckedBlock


def _model_folders(path: str) -> list[str]:
    found = FileSystems.match([f"{path}/*/{SAVED_MODEL_FILE}"])[0].metadata_list
    return [m.path[: -len(SAVED_MODEL_FILE) - 1] for m in found]


# `versions.locate` through Beam's file systems (local, gs://, ...).
BEAM_FILES = Files(lambda path: FileSystems.exists(f"{path}/{SAVED_MODEL_FILE}"), _model_folders)


@dataclass(frozen=True)
class ModelVersion:
    """The exported model a job scores with: its folder (path and version) and its spec."""

    folder: ModelFolder
    spec: FeatureSpec

    @property
    def path(self) -> str:
        return self.folder.path

    def describe(self) -> dict[str, Any]:
        """stats.json's `model`: the path, the version (the folder's name if not a number)
        and the spec's fingerprint."""
        version = self.folder.name if self.folder.version is None else self.folder.version
        return {"path": self.path, "version": version, "spec_fingerprint": self.spec.fingerprint}


def resolve_model(path: str) -> ModelVersion:
    """The version `path` names (an export base: its newest; or a version folder) and its
    spec, on any Beam file system."""
    folder = locate(path, BEAM_FILES)
    with FileSystems.open(f"{folder.path}/{SPEC_ASSET}") as f:
        spec = FeatureSpec.from_json(f.read().decode("utf-8"))
    return ModelVersion(folder, spec)


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
        from unified_embedding.runtime.startup import import_tensorflow_quietly

        import_tensorflow_quietly()  # a worker process: no "no GPU here" lines per worker
        import tensorflow as tf

        from unified_embedding.contract.kinds import kind_of
        from unified_embedding.exported.model import ExportedModel
        from unified_embedding.exported.versions import parse_version, version_name
        from unified_embedding.runtime.threads import set_op_threads

        if op_threads and not set_op_threads(op_threads):
            logging.warning("TensorFlow already runs in this process: --op-threads is ignored")

        self.spec = spec
        folder = ModelFolder(path, parse_version(version_name(path)))
        model = self._model = ExportedModel(folder, spec, tf.saved_model.load(path))
        fields = len(spec.fields)

        def score(data: tf.Tensor, starts: tf.Tensor, lengths: tf.Tensor) -> dict[str, tf.Tensor]:
            cells = tf.reshape(tf.strings.substr(data, starts, lengths), [fields, -1])
            raw = {f.name: kind_of(f).from_text(cells[i]) for i, f in enumerate(spec.fields)}
            out = {"probability": model.probability(raw)}
            if explain_top_k:
                out["pairs"], out["weights"] = model.pairs(raw, explain_top_k)
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
