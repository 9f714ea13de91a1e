"""Delimited text files as blocks of whole lines: decompression, BOM, header, byte offsets.

    with open("day1.tsv.gz", "rb") as raw:
        for block in file_blocks(raw, "day1.tsv.gz", header=None, block_rows=4096):
            block.data  # bytes of up to 4096 whole lines, each ending in b"\\n"

Shared by the Beam job (which reads byte ranges of uncompressed files, see
`pipelines/read.py`) and the in-process reader (`rows.py`). A truncated or corrupt compressed
file raises `CorruptInput` naming the file and the rows read from it: never a silent short read.
"""

from __future__ import annotations

import bz2
import csv
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import numpy as np

CHUNK_BYTES = 1 << 22  # 4 MiB reads: bounded memory whatever the file's size
MAX_LINE_BYTES = 1 << 26  # a "line" longer than 64 MiB is not a row of a delimited file
BOM = b"\xef\xbb\xbf"


class Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


# By file extension; anything else is read as plain text.
DECOMPRESSORS: dict[str, Callable[[], Decompressor]] = {
    ".gz": lambda: zlib.decompressobj(wbits=zlib.MAX_WBITS | 16),
    ".gzip": lambda: zlib.decompressobj(wbits=zlib.MAX_WBITS | 16),
    ".bz2": bz2.BZ2Decompressor,
    ".xz": lzma.LZMADecompressor,
    ".lzma": lzma.LZMADecompressor,
}


class CorruptInput(IOError):
    """A file that cannot be read to its end (truncated or corrupt compressed data)."""


def compression_of(path: str) -> str | None:
    """The compressed extension of `path` (`.gz`, `.bz2`, ...), or None for plain text."""
    lower = path.lower()
    return next((ext for ext in DECOMPRESSORS if lower.endswith(ext)), None)


@dataclass(frozen=True)
class LineBlock:
    """Whole lines of one file. `offset`: byte offset of the first line in the (decompressed)
    file; `line`: its 1-based line number, or 0 when unknown (a byte range not at the start)."""

    source: str
    offset: int
    line: int
    data: bytes

    def line_starts(self) -> np.ndarray:
        """Start of each line within `data`, int64 (lines,)."""
        ends = np.flatnonzero(np.frombuffer(self.data, dtype=np.uint8) == 0x0A)
        return np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)


def chunks(raw: BinaryIO, path: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's bytes in chunks, decompressed by extension; raises CorruptInput on a
    truncated or corrupt stream (multi-member gzip is read to its last member)."""
    ext = compression_of(path)
    if ext is None:
        yield from iter(lambda: raw.read(chunk_bytes), b"")
        return
    make = DECOMPRESSORS[ext]
    decompressor, ended, empty, lines = make(), False, True, 0
    try:
        for data in iter(lambda: raw.read(chunk_bytes), b""):
            empty = False
            while data:
                if ended:  # another member follows (concatenated gzip files)
                    decompressor, ended = make(), False
                out = decompressor.decompress(data)
                if out:
                    lines += out.count(b"\n")
                    yield out
                ended = decompressor.eof
                data = decompressor.unused_data if ended else b""
    except (zlib.error, OSError, EOFError, lzma.LZMAError) as e:
        raise CorruptInput(f"{path}: corrupt {ext} data after {lines} lines ({e})") from None
    if not ended and not empty:
        raise CorruptInput(
            f"{path}: truncated {ext} file: the compressed stream ends early, after {lines} lines"
        )


@dataclass(frozen=True)
class Header:
    """`Header(columns, delimiter, quoting)(line)`: does a first line name exactly `columns`?"""

    columns: tuple[str, ...]
    delimiter: str
    quoting: bool

    def __call__(self, line: bytes) -> bool:
        text = line.rstrip(b"\r").decode("utf-8", errors="replace")
        try:
            cells = next(
                csv.reader(
                    [text],
                    delimiter=self.delimiter,
                    quoting=csv.QUOTE_MINIMAL if self.quoting else csv.QUOTE_NONE,
                ),
                [],
            )
        except csv.Error:
            return False
        return tuple(cells) == self.columns


def line_blocks(
    parts: Iterator[bytes], source: str, offset: int, line: int, block_rows: int
) -> Iterator[LineBlock]:
    """Blocks of up to `block_rows` whole lines from byte `parts` that start at a line start
    (`offset`, `line` as in LineBlock). A last line without a newline gets one."""
    pending = b""
    for part in _terminated(parts):
        pending += part
        ends = np.flatnonzero(np.frombuffer(pending, dtype=np.uint8) == 0x0A)
        start = 0
        for cut in range(block_rows - 1, len(ends), block_rows):
            end = int(ends[cut]) + 1
            yield LineBlock(source, offset, line, pending[start:end])
            offset, line, start = offset + end - start, line + block_rows if line else 0, end
        pending = pending[start:]
        unfinished = len(pending) - (int(ends[-1]) + 1 - start if len(ends) > 0 else 0)
        if unfinished > MAX_LINE_BYTES:
            raise CorruptInput(
                f"{source}: no line break in the {unfinished} bytes after byte offset "
                f"{offset}: not a delimited text file (or a line over {MAX_LINE_BYTES} bytes)"
            )
    if pending:
        yield LineBlock(source, offset, line, pending)


def _terminated(parts: Iterator[bytes]) -> Iterator[bytes]:
    last = b"\n"
    for part in parts:
        if part:
            last = part
            yield part
    if not last.endswith(b"\n"):
        yield b"\n"


def file_blocks(
    raw: BinaryIO,
    path: str,
    header: Callable[[bytes], bool] | None,
    block_rows: int,
) -> Iterator[LineBlock]:
    """Every line of a whole file as blocks; a leading BOM is skipped, and so is a first line
    for which `header(line)` is true. Line numbers count the header line."""
    parts = chunks(raw, path)
    first = b""
    for part in parts:  # enough bytes for the BOM and the first line
        first += part
        if b"\n" in first or len(first) > CHUNK_BYTES:
            break
    offset, line = 0, 1
    if first.startswith(BOM):
        first, offset = first[len(BOM) :], len(BOM)
    if header is not None and first:
        cut = first.find(b"\n")
        end = len(first) if cut < 0 else cut + 1
        if header(first[:end].rstrip(b"\n")):
            first, offset, line = first[end:], offset + end, 2
    yield from line_blocks(_prepend(first, parts), path, offset, line, block_rows)


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest
