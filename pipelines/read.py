"""Read input files as blocks of whole lines, with a splittable DoFn over byte ranges.

An uncompressed file is split into byte ranges (an offset restriction, as Beam's textio does):
one huge file is read by many workers, and a runner such as Dataflow can split a range again
while it is read. A line belongs to the range holding its first byte. Compressed files cannot
be split and are read whole by one worker (line numbers are then exact).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes, FileMetadata, FileSystem
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider

from unified_embedding.contract.spec import InputFormat
from unified_embedding.rows.headers import extra_columns, header_of
from unified_embedding.rows.textfile import (
    CHUNK_BYTES,
    ColumnsOf,
    CorruptInput,
    LineBlock,
    compression_of,
    file_blocks,
    first_line,
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

    With a `header` (`headers.header_of`), each file's first line names its columns, and every
    block of the file carries them, whichever range it comes from (a range that starts later
    reads the header line at the file's start).
    """

    def __init__(self, header: ColumnsOf | None, block_rows: int, total_bytes: int) -> None:
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
            columns = self._columns(raw, path)
            # the line holding byte start - 1 belongs to the range before
            offset = _next_line_start(raw, start - 1)
            parts = iter(lambda: raw.read(CHUNK_BYTES), b"")
            blocks = line_blocks(parts, path, offset, 0, self._block_rows, columns)
            yield from _claimed(blocks, tracker)

    def _columns(self, raw: BinaryIO, path: str) -> tuple[str, ...] | None:
        """The file's columns, from the header line at its start (None: no header)."""
        if self._header is None:
            return None
        raw.seek(0)
        line = first_line(raw, path)
        return None if line is None else self._header(line, path)

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
            yield dataclasses.replace(block, data=block.data[:end])
        if claimed or last is None:
            tracker.try_claim(int(starts[inside]))  # at or past the stop: fails, ends the range
        return
    tracker.try_claim(tracker.current_restriction().stop)


def _below_stop(starts: np.ndarray, tracker: OffsetRestrictionTracker) -> int:
    return int(np.searchsorted(starts, tracker.current_restriction().stop))


FILES_READ = "files_read"  # ReadBlocks' tagged output: (file, lines) per range read


class CountedReadBlocksFn(ReadBlocksFn):
    """ReadBlocksFn, and for each range it finishes a (file, lines handed on) pair on the
    tagged output FILES_READ, a file without a line included: the evidence that every matched
    file was read to its end (`accounting.check_files`)."""

    def process(self, file: FileMetadata, tracker: Any = _RANGES) -> Iterator[Any]:
        lines = 0
        for block in super().process(file, tracker):
            lines += block.data.count(b"\n")
            yield block
        yield beam.pvalue.TaggedOutput(FILES_READ, (file.path, lines))


class ReadBlocks(beam.PTransform):
    """Every line of `files` (from `matched_files`, matched once when the job starts: the job
    reads what it checked, never a file that appears later, such as its own outputs), as
    LineBlocks (main output `blocks`), and (file, lines) per range read (FILES_READ)."""

    def __init__(
        self,
        files: Sequence[FileMetadata],
        header: ColumnsOf | None,
        block_rows: int,
        total_bytes: int = 0,
    ) -> None:
        super().__init__()
        self._files = list(files)
        self._header = header
        self._block_rows = block_rows
        self._total_bytes = total_bytes

    def expand(self, pipeline: beam.pvalue.PBegin) -> beam.pvalue.DoOutputsTuple:
        read = CountedReadBlocksFn(self._header, self._block_rows, self._total_bytes)
        return (
            pipeline
            | "Files" >> beam.Create(self._files)
            | "ReadBlocks" >> beam.ParDo(read).with_outputs(FILES_READ, main="blocks")
        )


class UnreadableInput(ValueError):
    """A matched entry that cannot be read as rows (a dangling link, a folder, no permission)."""


def matched_files(pattern: str, flag: str = "--input") -> list[FileMetadata]:
    """The files `pattern` (given by `flag`) matches, each one a file the job can read; raises
    naming the pattern when it matches nothing, and naming the entry when a match cannot be
    read:

    - a link to nothing, or a file without read permission (UnreadableInput; Beam's match
      drops such local entries without a word);
    - a folder (UnreadableInput): `logs/*` matching `logs/old/` is refused rather than
      skipped, since the user may expect its files read; name the files (`logs/*.tsv`), or
      use `logs/**` to read every file below `logs/` (folders then are only containers);
    - a compressed file of 0 bytes (CorruptInput): not even an empty compressed stream.
    """
    given = pattern
    local = isinstance(FileSystems.get_filesystem(pattern), LocalFileSystem)
    if local and not os.path.dirname(pattern) and re.search(r"[*?\[]", pattern):
        pattern = f"./{pattern}"  # Beam's local match lists nothing for `*.tsv`
    matches = FileSystems.match([pattern])[0].metadata_list
    if local:
        _check_local_entries(pattern, matches, flag)
    if not matches:
        raise FileNotFoundError(f"no input file matches `{flag} {given}`")
    for m in matches:
        if m.size_in_bytes == 0 and compression_of(m.path):
            raise CorruptInput(
                f"{m.path}: a {compression_of(m.path)} file of 0 bytes is not a compressed "
                f"stream (truncated or corrupt); remove it from the input if it is meant empty"
            )
    return matches


def _check_local_entries(pattern: str, matches: Sequence[FileMetadata], flag: str) -> None:
    """Every local entry the glob matches, as Beam lists them (recursively below the glob's
    fixed prefix) but without skipping any, is a readable file among `matches`."""
    found = {m.path for m in matches}
    recursive = "**" in pattern
    for path in found:
        if os.path.isdir(path):  # a plain path naming a folder
            raise UnreadableInput(_unreadable(pattern, path, _FOLDER, flag))
        if not os.access(path, os.R_OK):
            raise UnreadableInput(_unreadable(pattern, path, "no permission to read it", flag))
    fixed = re.match(r"^[^[*?]*", pattern)
    root = os.path.dirname(fixed.group(0)) if fixed else ""
    if fixed is None or fixed.group(0) == pattern:  # no glob
        if os.path.islink(pattern) and not os.path.exists(pattern):
            raise UnreadableInput(_unreadable(pattern, pattern, "a link to nothing", flag))
        return
    if not root:
        return  # not reached: matched_files gives such a glob its folder (`./*.tsv`)
    regex = re.compile(FileSystem.translate_pattern(pattern))
    for folder, subfolders, names in os.walk(root):
        for name in (*subfolders, *names):
            path = os.path.join(folder, name)  # as Beam's LocalFileSystem lists it
            if path in found or not regex.match(path):
                continue
            if os.path.islink(path) and os.path.isdir(path):
                raise UnreadableInput(
                    _unreadable(pattern, path, "a link to a folder, not a file", flag)
                )
            if os.path.isdir(path):
                if not recursive:  # `**`: folders are containers, their files are matched
                    raise UnreadableInput(_unreadable(pattern, path, _FOLDER, flag))
            elif not os.path.exists(path):
                raise UnreadableInput(_unreadable(pattern, path, "a link to nothing", flag))
            else:
                raise UnreadableInput(_unreadable(pattern, path, "it cannot be read", flag))


_FOLDER = (
    "a folder, not a file (match files only, e.g. `dir/*.tsv`; `dir/**` reads every file "
    "below `dir/`)"
)


def _unreadable(pattern: str, path: str, why: str, flag: str) -> str:
    return f"`{flag} {pattern}` matches `{path}`, which cannot be read: {why}"


def check_headers(files: Sequence[FileMetadata], fmt: InputFormat) -> dict[str, tuple[str, ...]]:
    """Reads each file's header line at job start, before anything is written: a file whose
    header lacks a column of `fmt` fails the job, naming the column and the file (HeaderError).
    Returns each file's extra columns (in the header, not in `fmt`: never read), for stats;
    {} for a headerless format. An empty file has no header and no rows."""
    header = header_of(fmt)
    if header is None or not files:
        return {}

    def extra(file: FileMetadata) -> tuple[str, ...]:
        with FileSystems.open(file.path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            line = first_line(raw, file.path)
        return () if line is None else extra_columns(fmt, header(line, file.path))

    # threads: on a remote file system each header is a round trip
    with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        extras = list(pool.map(extra, files))
    return {file.path: found for file, found in zip(files, extras, strict=True)}
