"""The record sink: TFRecord frames as TensorFlow writes them, gzip-compressed through Beam's
file-based sink, read back by TensorFlow's own reader.

    frame = length (u64 LE) | masked crc32c(length) | data | masked crc32c(data)
"""

import gzip
import io
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines.sinks import GZIP_LEVEL, WriteRecords, _GzipHandle, write_record
from unified_embedding.contract.artifacts import RECORD_SUFFIX

RECORDS = [
    b"",  # an empty record is a frame of length 0
    b"a",
    bytes(range(256)),  # every byte value
    b"\x00" * 8,  # looks like a length field
    "unicode \u00e9\u4e2d\U0001f600".encode(),
    bytes(range(7)) * 10_000,  # 70 kB: longer than one gzip write
]


def tensorflow_records(path: Path, compression: str = "GZIP") -> list[bytes]:
    """The records of a TFRecord file, as TensorFlow reads them (checks both CRCs)."""
    dataset = tf.data.TFRecordDataset(str(path), compression_type=compression)
    return [r.numpy() for r in dataset]


def write_records(records: list[bytes], prefix: Path) -> list[Path]:
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | beam.Create(records) | WriteRecords(str(prefix))
    return sorted(prefix.parent.glob(f"{prefix.name}-*"))


def test_frames_equal_tensorflows_writer_byte_for_byte(tmp_path: Path) -> None:
    ours = io.BytesIO()
    for record in RECORDS:
        write_record(ours, record)
    theirs = tmp_path / "tf.tfrecord"
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for record in RECORDS:
            writer.write(record)
    assert ours.getvalue() == theirs.read_bytes()  # lengths and masked CRCs included
    (tmp_path / "ours.tfrecord").write_bytes(ours.getvalue())
    assert tensorflow_records(tmp_path / "ours.tfrecord", compression="") == RECORDS


def test_a_corrupted_frame_fails_tensorflows_crc_check(tmp_path: Path) -> None:
    # The CRCs are checked, not just written: flip one data byte of the second frame.
    buffer = io.BytesIO()
    for record in (b"first", b"second"):
        write_record(buffer, record)
    data = bytearray(buffer.getvalue())
    data[(8 + 4 + 5 + 4) + (8 + 4)] ^= 0x01  # the first byte of b"second"
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(data))
    with pytest.raises(tf.errors.DataLossError, match="corrupted record"):
        tensorflow_records(path, compression="")


def test_written_records_read_back_with_tensorflows_gzip_reader(tmp_path: Path) -> None:
    shards = write_records(RECORDS, tmp_path / "train")
    assert shards, "no shard written"
    count = len(shards)
    names = [s.name for s in shards]
    assert names == [f"train-{i:05d}-of-{count:05d}{RECORD_SUFFIX}" for i in range(count)]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temporary files left
    found = [r for s in shards for r in tensorflow_records(s)]
    assert Counter(found) == Counter(RECORDS)


def test_shards_are_gzip_at_the_fast_level_with_no_timestamp(tmp_path: Path) -> None:
    (shard,) = write_records([b"x" * 1000], tmp_path / "eval")
    header = shard.read_bytes()[:10]  # RFC 1952: magic, method, flags, mtime (4), xfl, os
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert GZIP_LEVEL == 1 and header[8] == 4  # xfl 4: the fastest compression
    frames = io.BytesIO()
    write_record(frames, b"x" * 1000)
    assert gzip.decompress(shard.read_bytes()) == frames.getvalue()


def test_equal_records_write_identical_bytes(tmp_path: Path) -> None:
    first = write_records(RECORDS[:3], tmp_path / "a" / "train")
    second = write_records(RECORDS[:3], tmp_path / "b" / "train")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_an_empty_collection_writes_what_beams_tfrecord_sink_writes(tmp_path: Path) -> None:
    ours = write_records([], tmp_path / "ours" / "train")
    with TestPipeline(runner="FnApiRunner") as p:
        _ = (
            p
            | beam.Create([])
            | beam.io.WriteToTFRecord(
                str(tmp_path / "beam" / "train"), file_name_suffix=RECORD_SUFFIX
            )
        )
    beams = sorted((tmp_path / "beam").iterdir())
    assert (
        [s.name for s in ours]
        == [s.name for s in beams]
        == [f"train-00000-of-00001{RECORD_SUFFIX}"]
    )
    for shard in (*ours, *beams):
        assert tensorflow_records(shard) == []
        assert gzip.decompress(shard.read_bytes()) == b""


class FailingFile(io.BytesIO):
    """A file handle whose writes fail after `limit` bytes, as a full disk does."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.was_closed = False

    def write(self, data: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(data) > self.limit:
            raise OSError(28, "No space left on device")
        return super().write(data)

    def close(self) -> None:
        self.was_closed = True
        super().close()


def test_a_failed_compressed_write_raises_and_closes_the_file() -> None:
    raw = FailingFile(limit=100)
    handle = _GzipHandle(raw)
    # incompressible data, so the compressor writes to the file before close
    payload = bytes(range(256)) * 4096
    with pytest.raises(OSError, match="No space left on device"):
        for i in range(50):
            handle.write(bytes([i]) + payload[i:] + payload[:i])
        handle.close()
    if not raw.was_closed:  # the error came from a write: close reports it again
        with pytest.raises(OSError, match="No space left on device"):
            handle.close()
    assert raw.was_closed


def test_compressed_writes_keep_their_order() -> None:
    class Kept(io.BytesIO):
        def close(self) -> None:
            self.kept = self.getvalue()
            super().close()

    raw = Kept()
    handle = _GzipHandle(raw)
    parts = [bytes([i % 256]) * (i * 37 % 5000) for i in range(200)]
    for part in parts:
        assert handle.write(part) == len(part)
    handle.close()
    assert gzip.decompress(raw.kept) == b"".join(parts)
