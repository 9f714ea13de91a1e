"""`training_dataset`: batches cut from blocks keep every row once, in order unless shuffled.

Test records (row id i = 0..N-1, blocks of uneven sizes spread over three files):

    field  kind          value of row i
    n      numeric       float(i)
    c      categorical   [i, i + 10**6]          (2 probes)
    m      multi_valued  i % 3 values [i, -i]    (ragged)
    label                i % 2
"""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from unified_embedding.contract.spec import (
    FeatureSpec,
    FieldSpec,
    InputFormat,
    SpecError,
    TableSpec,
)
from unified_embedding.rows.records import RecordsError, encode_block, record_key
from unified_embedding.training.data import load_data_spec, naming_bad_records, training_dataset

SPEC = FeatureSpec(
    name="rows",
    input_format=InputFormat(columns=("label", "n", "c", "m")),
    label="label",
    fields=(
        FieldSpec("n", kind="numeric"),
        FieldSpec("c"),
        FieldSpec("m", kind="multi_valued", separator="|"),
    ),
)
BLOCKS = [[50, 37], [1, 64], [23]]  # rows per block, per file
ROWS = sum(map(sum, BLOCKS))


def block(start: int, count: int) -> bytes:
    ids = np.arange(start, start + count)
    lengths = ids % 3
    flat = np.repeat(np.stack([ids, -ids], axis=1), lengths, axis=0)
    columns = {
        "n": ids.astype(np.float32),
        "c": np.stack([ids, ids + 10**6], axis=1),
        "m": (flat, lengths),
    }
    return encode_block(SPEC, columns, (ids % 2).astype(np.float32))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("records")
    start = 0
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for i, sizes in enumerate(BLOCKS):
        path = root / f"train-{i:05d}-of-{len(BLOCKS):05d}.tfrecord.gz"
        with tf.io.TFRecordWriter(str(path), options) as writer:
            for count in sizes:
                writer.write(block(start, count))
                start += count
    return root


def row_ids(batches: tf.data.Dataset) -> list[np.ndarray]:
    """Each batch's row ids, after checking every column of each row belongs to that row."""
    out = []
    for batch in batches:
        ids = batch["n"].numpy().astype(np.int64)
        np.testing.assert_array_equal(batch["c"].numpy(), np.stack([ids, ids + 10**6], 1))
        np.testing.assert_array_equal(batch["label"].numpy()[:, 0], ids % 2)
        np.testing.assert_array_equal(batch["m"].row_lengths().numpy(), ids % 3)
        expected = np.repeat(np.stack([ids, -ids], axis=1), ids % 3, axis=0)
        np.testing.assert_array_equal(batch["m"].flat_values.numpy(), expected)
        out.append(ids)
    return out


def test_in_order_batches_without_shuffle(data_dir: Path) -> None:
    batches = row_ids(training_dataset(SPEC, data_dir, "train", 16, shuffle=False))
    assert [len(b) for b in batches] == [16] * (ROWS // 16) + [ROWS % 16]
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(ROWS))


def test_shuffle_keeps_every_row_once_and_mixes_blocks(data_dir: Path) -> None:
    batches = row_ids(training_dataset(SPEC, data_dir, "train", 16, shuffle=True, seed=3))
    rows = np.concatenate(batches)
    np.testing.assert_array_equal(np.sort(rows), np.arange(ROWS))
    assert not np.array_equal(rows, np.arange(ROWS))
    # Rows of one batch come from more than one block (blocks start at 0, 50, 87, 88, 152).
    assert len(np.unique(np.searchsorted([50, 87, 88, 152], batches[0], side="right"))) > 1


def test_drop_remainder_gives_full_batches(data_dir: Path) -> None:
    data = training_dataset(SPEC, data_dir, "train", 16, shuffle=True, drop_remainder=True)
    assert [len(b) for b in row_ids(data)] == [16] * (ROWS // 16)


def test_shard_keeps_every_shards_th_row(data_dir: Path) -> None:
    data = training_dataset(SPEC, data_dir, "train", 10, shuffle=False, shard=(3, 1))
    np.testing.assert_array_equal(np.concatenate(row_ids(data)), np.arange(1, ROWS, 3))


def read_all(spec: FeatureSpec, data_dir: Path) -> int:
    """Rows read through `training_dataset` under `naming_bad_records`, as `ue train` reads."""
    with naming_bad_records(spec, data_dir):
        return sum(len(b["label"]) for b in training_dataset(spec, data_dir, "train", 16, False))


def test_a_truncated_shard_is_named(data_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(data_dir, tmp_path / "records"))
    shard = copy / "train-00001-of-00003.tfrecord.gz"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(RecordsError, match=r"train-00001-of-00003.tfrecord.gz` is truncated"):
        read_all(SPEC, copy)


def test_records_of_another_spec_are_named_not_misread(data_dir: Path) -> None:
    log1p = dataclasses.replace(SPEC.fields[0], transform="log1p")  # same columns, other meaning
    other = SPEC.replace(fields=(log1p, *SPEC.fields[1:]))
    with pytest.raises(
        RecordsError,
        match=r"train-00000-of-00003.tfrecord.gz` does not hold "
        r"records of this spec.json \(.*another spec.json",
    ):
        read_all(other, data_dir)
    extra = SPEC.replace(
        input_format=InputFormat(columns=("label", "n", "c", "m", "x")),
        fields=(*SPEC.fields, FieldSpec("x")),
    )
    with pytest.raises(RecordsError, match=r"train-00000-of-00003.tfrecord.gz` .*Feature: x"):
        read_all(extra, data_dir)


def test_a_run_reads_its_records_with_its_own_table() -> None:
    """The record contract leaves out what a run changes: the table and embedding width."""
    resized = SPEC.replace(table=TableSpec(rows=1024, width=4), embedding_dim=8)
    assert record_key(resized) == record_key(SPEC)
    other_probes = SPEC.replace(fields=(SPEC.fields[0], FieldSpec("c", probes=3), SPEC.fields[2]))
    assert record_key(other_probes) != record_key(SPEC)


def test_errors_no_record_explains_pass_unchanged(data_dir: Path) -> None:
    with (
        pytest.raises(tf.errors.InvalidArgumentError, match="not about records"),
        naming_bad_records(SPEC, data_dir),
    ):
        raise tf.errors.InvalidArgumentError(None, None, "not about records")


def test_a_spec_json_with_an_impossible_table_is_refused_naming_it(tmp_path: Path) -> None:
    """`--budget 1e30` once wrote 3.1e28 table rows into spec.json; `ue train` then died in
    Keras. Such a spec.json is now refused, naming the file."""
    data = SPEC.to_dict()
    data["table"] = {"rows": 31 * 10**27, "width": 8, "num_tables": 1}
    (tmp_path / "spec.json").write_text(json.dumps(data))
    with pytest.raises(SpecError, match=rf"^`{tmp_path}/spec.json`: `rows` should be at most"):
        load_data_spec(tmp_path)
