"""Hash the valid rows of a block with the ONE shared function, split them (`split`: by content,
by input file or by a time column) and serialize one training record per split, plus the
block's statistics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from pipelines.accounting import RowCounts
from pipelines.numpy_encode import encode_cells
from pipelines.options import DEFAULT_EVAL_FRACTION
from pipelines.sketch import HyperLogLog
from pipelines.split import RandomSplit, Split
from pipelines.stats import BlockStats
from unified_embedding.contract import artifacts
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.validation import CheckedBlock

STATS = "stats"


Encoder = Callable[..., dict[str, Any]]


def graph_encoder(spec: FeatureSpec) -> Encoder:
    """`features.encode_features` for `spec` as one traced graph: the fields' values packed
    one field after another by `arrow_tensors.pack_strings`, `sizes` values per field. One
    call per block, and the fields' ops run in parallel."""
    import tensorflow as tf

    from unified_embedding.contract.features import encode_features

    def encode(data: tf.Tensor, starts: tf.Tensor, lengths: tf.Tensor, sizes: tf.Tensor) -> Any:
        cells = tf.split(tf.strings.substr(data, starts, lengths), sizes, num=len(spec.fields))
        return encode_features(spec, {f.name: cells[i] for i, f in enumerate(spec.fields)})

    vector = tf.TensorSpec([None], tf.int64)
    sizes = tf.TensorSpec([len(spec.fields)], tf.int64)
    return tf.function(
        encode, input_signature=[tf.TensorSpec([], tf.string), vector, vector, sizes]
    )


def encode_columns(
    spec: FeatureSpec, checked: CheckedBlock, encoder: Encoder | None = None
) -> dict[str, object]:
    """The valid rows -> NumPy columns of `numpy_encode.encode_cells` (or of `encoder`, a
    `graph_encoder`: the TensorFlow reference); multi-valued: flat fingerprints and lengths.
    Each field's distinct cells are encoded once and gathered back (pyarrow dictionary
    encoding): click logs repeat values heavily, so the hashing sees far fewer strings than
    there are cells."""
    distinct, index = {}, {}
    for f in spec.fields:
        encoded = pc.dictionary_encode(checked.columns[f.name])
        distinct[f.name] = encoded.dictionary
        index[f.name] = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    values = encode_cells(spec, distinct) if encoder is None else _graph(spec, distinct, encoder)
    out: dict[str, object] = {}
    for f in spec.fields:
        value, rows = values[f.name], index[f.name]
        if isinstance(value, tuple):
            flat, lengths = value
            out[f.name] = _gather_ragged(flat, lengths, rows)
        else:
            out[f.name] = np.asarray(value)[rows]
    return out


def _graph(spec: FeatureSpec, distinct: dict[str, Any], encoder: Encoder) -> dict[str, object]:
    """Distinct cells through a `graph_encoder`, as NumPy (multi-valued: flat and lengths)."""
    import tensorflow as tf

    from unified_embedding.rows.arrow_tensors import pack_strings

    data, starts, lengths = pack_strings([distinct[f.name] for f in spec.fields])
    sizes = np.array([len(distinct[f.name]) for f in spec.fields], dtype=np.int64)
    encoded = encoder(tf.constant(data), starts, lengths, sizes)
    return {
        name: (v.flat_values.numpy(), v.row_lengths().numpy())
        if isinstance(v, tf.RaggedTensor)
        else v.numpy()
        for name, v in encoded.items()
    }


def _gather_ragged(flat: np.ndarray, lengths: np.ndarray, rows: np.ndarray) -> tuple[Any, Any]:
    """Rows `rows` of a ragged (flat values, row lengths) pair, as a new pair."""
    picked = lengths[rows]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[rows]
    position = np.repeat(starts - np.concatenate([[0], np.cumsum(picked)[:-1]]), picked)
    return flat[position + np.arange(int(picked.sum()))], picked


def eval_rows(checked: CheckedBlock, split_column: str | None, eval_fraction: float) -> np.ndarray:
    """True for rows of the eval split of the random split (`split.RandomSplit`): a FarmHash
    bucket of the row's text (or of its `split_column` value)."""
    return RandomSplit(eval_fraction, split_column).assign(checked).eval


def take_rows(spec: FeatureSpec, columns: dict[str, object], rows: np.ndarray) -> dict[str, object]:
    """The rows of a boolean mask, from `encode_columns` output."""
    out: dict[str, object] = {}
    for f in spec.fields:
        value = columns[f.name]
        if isinstance(value, tuple):
            flat, lengths = value
            out[f.name] = (flat[np.repeat(rows, lengths)], lengths[rows])
        else:
            out[f.name] = np.asarray(value)[rows]
    return out


def block_stats(spec: FeatureSpec, checked: CheckedBlock, columns: dict[str, object]) -> BlockStats:
    """Rows read / valid / dead (in total and for the block's file), clicks, missing cells and
    distinct-value sketches of a block."""
    stats = BlockStats(
        rows=RowCounts.of(checked),
        clicks=float(np.nansum(checked.labels)),
        missing=np.array(
            [pc.sum(pc.equal(checked.columns[f.name], "")).as_py() or 0 for f in spec.fields],
            dtype=np.int64,
        ),
    )
    for f in spec.categorical_fields:
        value = columns.get(f.name)
        if value is not None:
            ids = value[0] if isinstance(value, tuple) else value
            stats.distinct[f.name] = HyperLogLog().add(np.asarray(ids)[:, 0])
    return stats


class EncodeBlockFn(beam.DoFn):
    """CheckedBlock -> tagged outputs `train` and `eval` (one serialized block record each,
    when the split has rows) and `stats` (one BlockStats). `split` decides each row's split;
    without it, the random split of `split_column` and `eval_fraction`."""

    def __init__(
        self,
        spec_json: str,
        split_column: str | None = None,
        eval_fraction: float = DEFAULT_EVAL_FRACTION,
        split: Split | None = None,
    ) -> None:
        self._spec_json = spec_json
        self._split = split if split is not None else RandomSplit(eval_fraction, split_column)
        self._rows = {s: Metrics.counter("encode", f"rows_{s}") for s in artifacts.SPLITS}

    def setup(self) -> None:
        self._spec = FeatureSpec.from_json(self._spec_json)

    def process(self, checked: CheckedBlock) -> Iterator[beam.pvalue.TaggedOutput]:
        from unified_embedding.rows.records import encode_block

        columns = encode_columns(self._spec, checked) if len(checked.rows) else {}
        stats = block_stats(self._spec, checked, columns)
        if len(checked.rows):
            is_eval, stats.without_split_value = self._split.assign(checked)
            for split, rows in zip(artifacts.SPLITS, (~is_eval, is_eval), strict=True):
                count = int(rows.sum())
                stats.splits[split] = count
                stats.split_clicks[split] = float(np.nansum(checked.labels[rows]))
                if count:
                    part = take_rows(self._spec, columns, rows)
                    yield beam.pvalue.TaggedOutput(
                        split,
                        encode_block(self._spec, part, checked.labels[rows]),  # type: ignore[arg-type]
                    )
                    self._rows[split].inc(count)
        yield beam.pvalue.TaggedOutput(STATS, stats)
