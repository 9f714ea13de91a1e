"""An exported model: one version folder loaded, its spec.json checked against its signatures,
and every way the applications run it (`ue evaluate`, `ue score`, the server, the notebooks).

    model = ExportedModel.load("export/")          # an export base (its newest version) or a
                                                    # version folder; local or any file system
    model.spec, model.path, model.version           # TensorFlow can read (gs://, ...)
    model.score_rows(rows)                          # RawRows -> P(click), float32 (rows,)
    model.score_packed(categorical, numeric)        # the `packed` signature's inputs
    model.attention_rows(rows)                      # (rows, layers, heads, fields, fields)
    model.probability(raw), model.pairs(raw, k)     # tensors, also inside a tf.function

`pairs` ranks each row's ordered field pairs (source, target) by attention weight, averaged over
layers and heads, a field with itself left out: the explanations of the server and of
`ue score --explain-top-k`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from unified_embedding.contract.artifacts import SAVED_MODEL_FILE, SPEC_ASSET
from unified_embedding.contract.kinds import kind_of
from unified_embedding.contract.raw_values import raw_type
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.exported.versions import Files, ModelFolder, locate, version_name
from unified_embedding.rows.reader import RawRows

REQUIRED_SIGNATURES = ("packed", "serving_default", "attention")
Tensors = Mapping[str, tf.Tensor]


class InconsistentModel(ValueError):
    """A SavedModel whose signatures do not match its own spec.json."""


def _join(folder: str, name: str) -> str:
    return posixpath.join(folder, name) if "://" in folder else str(Path(folder) / name)


def _model_folders(path: str) -> list[str]:
    found = tf.io.gfile.glob(_join(path, f"*/{SAVED_MODEL_FILE}"))
    return [p[: -len(SAVED_MODEL_FILE)].rstrip("/\\") for p in found]


# Any file system TensorFlow reads: the SavedModel itself is read through it anyway.
TF_FILES = Files(lambda path: tf.io.gfile.exists(_join(path, SAVED_MODEL_FILE)), _model_folders)


def read_spec(folder: str | Path) -> FeatureSpec:
    """The spec.json a version folder carries as an asset."""
    with tf.io.gfile.GFile(_join(str(folder), SPEC_ASSET), "r") as f:
        return FeatureSpec.from_json(f.read())


def check_signatures(spec: FeatureSpec, signatures: Mapping[str, Any]) -> None:
    """Raises InconsistentModel unless the signatures take exactly the fields of `spec`."""
    absent = [s for s in REQUIRED_SIGNATURES if s not in signatures]
    if absent:
        raise InconsistentModel(f"the SavedModel lacks the signatures {absent}")
    _, packed = signatures["packed"].structured_input_signature
    shapes = {k: v.shape.as_list() for k, v in packed.items()}
    expected = {
        "categorical": [None, len(spec.categorical_fields)],
        "numeric": [None, len(spec.numeric_fields)],
    }
    if shapes != expected:
        raise InconsistentModel(
            f"signature `packed` takes {shapes}; spec.json (fingerprint {spec.fingerprint}) "
            f"needs {expected}"
        )
    _, raw = signatures["serving_default"].structured_input_signature
    inputs = {k: v.dtype for k, v in raw.items()}
    wanted = {f.name: tf.as_dtype(raw_type(f).tf_dtype) for f in spec.fields}
    if inputs != wanted:
        diff = sorted(set(inputs.items()) ^ set(wanted.items()), key=str)[:4]
        raise InconsistentModel(
            f"signature `serving_default` disagrees with spec.json (fingerprint "
            f"{spec.fingerprint}) on {diff}"
        )


def raw_batches(
    spec: FeatureSpec, rows: RawRows, batch_size: int
) -> Iterator[dict[str, tf.Tensor]]:
    """Inputs of the raw-features signatures; numeric text is parsed the way the pipeline does."""
    for start in range(0, len(rows), batch_size):
        batch = {}
        for f in spec.fields:
            text = tf.constant(rows.columns[f.name][start : start + batch_size].astype(str))
            batch[f.name] = kind_of(f).from_text(text)
        yield batch


def top_pairs(attention: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Each row's `k` strongest ordered field pairs, strongest first.

    Args:
      attention: (rows, layers, heads, fields, fields) weights of the `attention` signature.
      k: pairs per row; at most fields * (fields - 1) are returned.

    Returns:
      `pairs` int32 (rows, k), the index `source * fields + target` of each pair, and `weights`
      float32 (rows, k), its weight averaged over layers and heads. A field paired with itself
      is left out.
    """
    weights = tf.reduce_mean(attention, axis=[1, 2])  # (rows, fields, fields)
    fields = attention.shape[-1]
    diagonal = tf.fill(tf.shape(weights)[:2], tf.constant(-np.inf, weights.dtype))
    weights = tf.linalg.set_diag(weights, diagonal)
    top = tf.math.top_k(tf.reshape(weights, [-1, fields * fields]), k=min(k, fields * (fields - 1)))
    return top.indices, top.values


class ExportedModel:
    """One loaded version; thread-safe (TensorFlow calls are)."""

    def __init__(self, folder: ModelFolder, spec: FeatureSpec, loaded: Any) -> None:
        check_signatures(spec, loaded.signatures)
        self.folder = folder
        self.spec = spec
        self.loaded = loaded  # keeps the variables alive
        self._serve = loaded.signatures["serving_default"]
        self._packed = loaded.signatures["packed"]
        self._attention = loaded.signatures["attention"]

    @classmethod
    def load(cls, path: str | Path) -> ExportedModel:
        """The version `path` names: an export base (its newest version) or a version folder.
        Raises FileNotFoundError without a SavedModel there, SpecError for a bad spec.json and
        InconsistentModel when the signatures disagree with it."""
        return cls.load_folder(locate(path, TF_FILES))

    @classmethod
    def load_folder(cls, folder: ModelFolder) -> ExportedModel:
        """Exactly `folder`, without looking for versions below it."""
        spec = read_spec(folder.path)
        return cls(folder, spec, tf.saved_model.load(folder.path))

    @property
    def path(self) -> str:
        return self.folder.path

    @property
    def version(self) -> int | None:
        """The folder's name as a version; None when it is not one (a copy named `latest/`)."""
        return self.folder.version

    @property
    def name(self) -> str:
        return version_name(self.folder.path)

    def probability(self, raw: Tensors) -> tf.Tensor:
        """`serving_default`: raw features (one tensor per field) -> P(click) (rows,)."""
        return self._serve(**raw)["probability"]

    def attention(self, raw: Tensors) -> tf.Tensor:
        """(rows, layers, heads, fields, fields) attention weights of raw features."""
        return self._attention(**raw)["attention"]

    def pairs(self, raw: Tensors, k: int) -> tuple[tf.Tensor, tf.Tensor]:
        """Each row's `k` strongest field pairs (`top_pairs`)."""
        return top_pairs(self.attention(raw), k)

    def score_packed(self, categorical: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        """The `packed` signature: (rows, categorical fields) strings and (rows, numeric
        fields) float32, columns in spec order -> float32 (rows,)."""
        out = self._packed(
            categorical=tf.constant(categorical, tf.string),
            numeric=tf.constant(numeric, tf.float32),
        )
        return out["probability"].numpy()

    def score_rows(self, rows: RawRows, batch_size: int = 4096) -> np.ndarray:
        """P(click) of raw rows (text cells, as `rows.reader` reads them), float32 (rows,)."""
        parts = [self.probability(b).numpy() for b in raw_batches(self.spec, rows, batch_size)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def attention_rows(self, rows: RawRows, batch_size: int = 512) -> np.ndarray:
        """(rows, layers, heads, fields, fields) attention weights of raw rows."""
        parts = [self.attention(b).numpy() for b in raw_batches(self.spec, rows, batch_size)]
        if parts:
            return np.concatenate(parts)
        fields = len(self.spec.fields)
        return np.zeros((0, 0, 0, fields, fields), np.float32)
