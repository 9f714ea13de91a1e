"""Read input files as blocks of whole lines, with a splittable DoFn over byte ranges.

An uncompressed file is split into byte ranges (an offset restriction, as Beam's textio does):
one huge file is read by many workers, and a runner such as Dataflow can split a range again
while it is read. A line belongs to the range holding its first byte. Compressed files cannot
be split and are read whole by one worker (line numbers are then exact).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import apache_beam as beam
import numpy as np
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes, FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider

from unified_embedding.textfile import (
    CHUNK_BYTES,
    LineBlock,
    compression_of,
    file_blocks,
    line_blocks,
)

SPLIT_BYTES = 64 << 20  # initial byte ranges of an uncompressed file
_LOG_EVERY_SECONDS = 5.0


class WholeFile(OffsetRange):
    """A compressed file's range: one unit of work."""


class WholeFileTracker(OffsetRestrictionTracker):
    """Never splits: a compressed stream can only be read from its start."""

    def try_split(self, fraction_of_remainder: float) -> None:
        return None


class FileRanges(RestrictionProvider):
    """Byte ranges of an uncompressed file; a compressed file is one range nobody splits."""

    def __init__(self, split_bytes: int | None = None) -> None:
        self._split_bytes = split_bytes  # None: SPLIT_BYTES, read when splitting

    def initial_restriction(self, file: FileMetadata) -> OffsetRange:
        size = max(file.size_in_bytes, 1)
        return WholeFile(0, size) if compression_of(file.path) else OffsetRange(0, size)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        if isinstance(restriction, WholeFile):
            return WholeFileTracker(restriction)
        return OffsetRestrictionTracker(restriction)

    def split(self, file: FileMetadata, restriction: OffsetRange) -> Iterator[OffsetRange]:
        if compression_of(file.path) is not None:
            yield restriction
        else:
            yield from restriction.split(self._split_bytes or SPLIT_BYTES)

    def restriction_size(self, file: FileMetadata, restriction: OffsetRange) -> int:
        return restriction.size()

    def truncate(self, file: FileMetadata, restriction: OffsetRange) -> None:
        return None  # a batch source: nothing to drain


_RANGES = beam.DoFn.RestrictionParam(FileRanges())


class ReadBlocksFn(beam.DoFn):
    """FileMetadata -> LineBlocks of up to `block_rows` whole lines of its range.

    `header(line) -> bool` says whether a file's first line is a header to skip.
    """

    def __init__(
        self, header: Callable[[bytes], bool] | None, block_rows: int, total_bytes: int
    ) -> None:
        self._header = header
        self._block_rows = block_rows
        self._total_bytes = total_bytes
        self._rows = Metrics.counter("read", "rows_read")
        self._bytes = Metrics.counter("read", "bytes_read")

    def setup(self) -> None:
        self._started = self._last_log = time.monotonic()
        self._done_rows = self._done_bytes = 0

    def process(
        self,
        file: FileMetadata,
        tracker: Any = _RANGES,
    ) -> Iterator[LineBlock]:
        path = file.path
        if compression_of(path) is not None:
            blocks = self._whole_file(path, tracker)
        else:
            blocks = self._byte_range(path, tracker)
        for block in blocks:
            yield block
            self._progress(block)

    def _whole_file(self, path: str, tracker: OffsetRestrictionTracker) -> Iterator[LineBlock]:
        if not tracker.try_claim(tracker.current_restriction().start):
            return
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            yield from file_blocks(raw, path, self._header, self._block_rows)
        tracker.try_claim(tracker.current_restriction().stop)  # done

    def _byte_range(self, path: str, tracker: OffsetRestrictionTracker) -> Iterator[LineBlock]:
        start = tracker.current_restriction().start
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            if start == 0:
                first = file_blocks(raw, path, self._header, self._block_rows)
                yield from _claimed(first, tracker)
                return
            # the line holding byte start - 1 belongs to the range before
            offset = _next_line_start(raw, start - 1)
            parts = iter(lambda: raw.read(CHUNK_BYTES), b"")
            blocks = line_blocks(parts, path, offset, 0, self._block_rows)
            yield from _claimed(blocks, tracker)

    def _progress(self, block: LineBlock) -> None:
        rows = block.data.count(b"\n")
        self._rows.inc(rows)
        self._bytes.inc(len(block.data))
        self._done_rows += rows
        self._done_bytes += len(block.data)
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_SECONDS:
            self._last_log = now
            logging.info(
                "read: %d rows (%.0f rows/s) and %.1f%% of the input's %.0f MB by this worker",
                self._done_rows,
                self._done_rows / (now - self._started),
                100.0 * self._done_bytes / max(self._total_bytes, 1),
                self._total_bytes / 1e6,
            )


def _next_line_start(raw: BinaryIO, position: int) -> int:
    """The offset just past the first newline at or after `position` (or the file's end);
    leaves `raw` there."""
    raw.seek(position)
    while True:
        chunk = raw.read(1 << 16)
        if not chunk:
            return position
        cut = chunk.find(b"\n")
        if cut >= 0:
            raw.seek(position + cut + 1)
            return position + cut + 1
        position += len(chunk)


def _claimed(blocks: Iterator[LineBlock], tracker: OffsetRestrictionTracker) -> Iterator[LineBlock]:
    """The blocks' lines that start inside the range, each block claimed at its last line's
    start. A failed claim ends the range: its stop is then final, and the lines before it are
    still this range's (a runner splits only past the last claimed position)."""
    for block in blocks:
        starts = block.line_starts() + block.offset
        inside = _below_stop(starts, tracker)
        last = int(starts[inside - 1]) if inside else None
        claimed = last is not None and tracker.try_claim(last)
        if claimed and inside == len(starts):
            yield block
            continue
        if not claimed and last is not None:
            inside = _below_stop(starts, tracker)
        if inside:
            end = int(starts[inside]) - block.offset if inside < len(starts) else None
            yield LineBlock(block.source, block.offset, block.line, block.data[:end])
        if claimed or last is None:
            tracker.try_claim(int(starts[inside]))  # at or past the stop: fails, ends the range
        return
    tracker.try_claim(tracker.current_restriction().stop)


def _below_stop(starts: np.ndarray, tracker: OffsetRestrictionTracker) -> int:
    return int(np.searchsorted(starts, tracker.current_restriction().stop))


class ReadBlocks(beam.PTransform):
    """Every line of every file matching `pattern`, as LineBlocks; a pattern matching no file
    fails the job, naming the pattern."""

    def __init__(
        self,
        pattern: str,
        header: Callable[[bytes], bool] | None,
        block_rows: int,
        total_bytes: int = 0,
    ) -> None:
        super().__init__()
        self._pattern = pattern
        self._header = header
        self._block_rows = block_rows
        self._total_bytes = total_bytes

    def expand(self, pipeline: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pipeline
            | "MatchFiles" >> fileio.MatchFiles(self._pattern, fileio.EmptyMatchTreatment.DISALLOW)
            | "ReadBlocks"
            >> beam.ParDo(ReadBlocksFn(self._header, self._block_rows, self._total_bytes))
        )


def matched_files(pattern: str) -> list[FileMetadata]:
    """The files a pattern matches; none is an error naming the pattern."""
    matches = FileSystems.match([pattern])[0].metadata_list
    if not matches:
        raise FileNotFoundError(f"no input file matches `--input {pattern}`")
    return matches
