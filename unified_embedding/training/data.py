"""`tf.data` input over the pipeline's records, checked against the feature contract.

spec = load_data_spec(data_dir, expected_fingerprint=model_spec.fingerprint)
train = training_dataset(spec, data_dir, "train", batch_size=1024, shuffle=True)
with naming_bad_records(spec, data_dir):   # a truncated shard or another spec's records:
    model.fit(train)                       # RecordsError naming the file, not a traceback
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import tensorflow as tf

from unified_embedding.contract.artifacts import SPEC_FILE, SPLITS, record_glob
from unified_embedding.contract.spec import FeatureSpec, SpecError
from unified_embedding.contract.vocabulary import sorted_unique
from unified_embedding.rows.records import COMPRESSION, LABEL, find_bad_file, parse_block


def load_data_spec(data_dir: str | Path, expected_fingerprint: str | None = None) -> FeatureSpec:
    """The spec the pipeline wrote; a fingerprint other than `expected_fingerprint` is an error
    (records hashed under another contract would be silently mis-read)."""
    path = Path(data_dir) / SPEC_FILE
    if not path.is_file():
        raise SpecError(f"no {SPEC_FILE} in the data directory. Received: `data={data_dir}`")
    try:
        spec = FeatureSpec.load(path)
    except SpecError as e:  # e.g. a table no budget can give, from a spec.json of an old run
        raise SpecError(f"`{path}`: {e}") from None
    if expected_fingerprint is not None and spec.fingerprint != expected_fingerprint:
        raise SpecError(
            f"the records were written under spec {spec.fingerprint} but the model expects "
            f"{expected_fingerprint}. Received: `data={data_dir}`"
        )
    return spec


def record_files(data_dir: str | Path, split: str) -> list[str]:
    files = sorted(str(p) for p in Path(data_dir).glob(record_glob(split)))
    if not files:
        raise SpecError(f"no `{split}` records in the data directory. Received: `data={data_dir}`")
    return files


@contextlib.contextmanager
def naming_bad_records(spec: FeatureSpec, data_dir: str | Path) -> Iterator[None]:
    """Turns an error reading the records of `data_dir` (a truncated or corrupt shard, records
    of another spec.json) into a `records.RecordsError` naming the file. The input pipeline
    itself stays in TensorFlow: the files are only read again, in Python, on this error path.
    Errors no record file explains pass unchanged."""
    try:
        yield
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        files = sorted(str(p) for s in SPLITS for p in Path(data_dir).glob(record_glob(s)))
        bad = find_bad_file(spec, files, error)
        if bad is None:
            raise
        raise bad from error


# Rows per block the pipeline writes by default (`ue preprocess --block-rows`): turns the row
# buffer of a shuffle into blocks.
BLOCK_ROWS = 4096
# Rows whose order is permuted together: batches mix this many rows of ~8 shuffled blocks.
MIX_ROWS = 8 * BLOCK_ROWS

Columns = dict[str, tf.Tensor | tf.RaggedTensor]


def training_dataset(
    spec: FeatureSpec,
    data_dir: str | Path,
    split: str,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    shuffle_buffer: int = 100_000,
    drop_remainder: bool = False,
    shard: tuple[int, int] | None = None,
    keep: Callable[[Mapping[str, tf.Tensor]], tf.Tensor] | None = None,
) -> tf.data.Dataset:
    """Batches of row dicts (label included): parallel reads and parsing, shuffle, prefetch.
    `drop_remainder` gives every batch the same static shape (TPUs need it); `shard` =
    (shards, index) keeps every shards-th row from the index-th on (one worker's part);
    `keep` maps a parsed block to a (rows,) bool mask of the rows to keep.

    Rows stay in columns from the records to the batch (`rebatch` cuts blocks into batches):
    a row-by-row `unbatch` -> `shuffle` -> `batch` cost ~40 us of CPU per row, a fifth of
    the training step. The shuffle works on blocks instead: a buffer of
    `shuffle_buffer // BLOCK_ROWS` blocks in random order, then the rows of each MIX_ROWS
    window (~8 blocks) permuted together, so a batch mixes rows of several blocks.
    """
    paths = record_files(data_dir, split)
    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    records = files.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=COMPRESSION),
        cycle_length=tf.data.AUTOTUNE,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not shuffle,
    )
    blocks = records.map(lambda s: parse_block(spec, s), num_parallel_calls=tf.data.AUTOTUNE)
    if keep is not None:
        blocks = blocks.map(lambda b: _masked(b, keep(b)), num_parallel_calls=tf.data.AUTOTUNE)
    if shard is not None:
        blocks = blocks.scan(tf.constant(0, tf.int64), _shard_rows(*shard))
    if shuffle:
        buffer = max(2, shuffle_buffer // BLOCK_ROWS)
        blocks = blocks.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        blocks = blocks.rebatch(MIX_ROWS).map(
            lambda b: _take_rows(b, tf.random.shuffle(tf.range(_rows(b)), seed=seed)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    batches = blocks.rebatch(batch_size, drop_remainder=drop_remainder)
    return batches.prefetch(tf.data.AUTOTUNE)


def _rows(columns: Columns) -> tf.Tensor:
    return tf.shape(columns[LABEL], out_type=tf.int64)[0]


def _take_rows(columns: Columns, rows: tf.Tensor) -> Columns:
    return {k: tf.gather(v, rows) for k, v in columns.items()}


def _shard_rows(
    shards: int, index: int
) -> Callable[[tf.Tensor, Columns], tuple[tf.Tensor, Columns]]:
    """A `scan` step keeping the rows whose position in the stream is `index` mod `shards`
    (what `Dataset.shard` keeps of the rows one by one)."""

    def step(offset: tf.Tensor, columns: Columns) -> tuple[tf.Tensor, Columns]:
        positions = offset + tf.range(_rows(columns))
        kept = tf.where(positions % shards == index)[:, 0]
        return offset + _rows(columns), _take_rows(columns, kept)

    return step


def _masked(block: Mapping[str, tf.Tensor], mask: tf.Tensor) -> dict[str, tf.Tensor]:
    return {
        k: tf.ragged.boolean_mask(v, mask)
        if isinstance(v, tf.RaggedTensor)
        else tf.boolean_mask(v, mask)
        for k, v in block.items()
    }


def distinct_fingerprints(
    spec: FeatureSpec, data_dir: str | Path, split: str = "train"
) -> dict[str, np.ndarray]:
    """Sorted distinct probe-0 fingerprints of each categorical field in a split's records:
    the vocabularies of collision-free tables trained from records. One pass, in memory; for
    web-scale data compute them with a Beam job instead."""
    seen: dict[str, list[np.ndarray]] = {f.name: [] for f in spec.categorical_fields}
    for batch in training_dataset(spec, data_dir, split, 65_536, shuffle=False):
        for f in spec.categorical_fields:
            ids = batch[f.name]
            ids = ids.flat_values if isinstance(ids, tf.RaggedTensor) else ids
            seen[f.name].append(sorted_unique(ids.numpy()[:, 0]))
    return {name: sorted_unique(np.concatenate(parts)) for name, parts in seen.items()}
