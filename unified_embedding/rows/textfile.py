"""Delimited text files as blocks of whole lines: decompression, BOM, header, byte offsets.

    with open("day1.tsv.gz", "rb") as raw:
        for block in file_blocks(raw, "day1.tsv.gz", header=None, block_rows=4096):
            block.data  # bytes of up to 4096 whole lines, each ending in b"\\n"

With a `header` (`headers.HeaderReader`), a file's first line names its columns: every block
carries them (`LineBlock.columns`), so its rows are parsed by name (`cells.split_cells`).

Shared by the Beam job (which reads byte ranges of uncompressed files, see
`pipelines/read.py`) and the in-process reader (`rows.py`). A truncated or corrupt compressed
file raises `CorruptInput` naming the file and the rows read from it: never a silent short read.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

import numpy as np

CHUNK_BYTES = 1 << 22  # 4 MiB reads: bounded memory whatever the file's size
MAX_LINE_BYTES = 1 << 26  # a "line" longer than 64 MiB is not a row of a delimited file
BOM = b"\xef\xbb\xbf"
HEADER_CHUNK_BYTES = 1 << 16  # reads to find a header line: a header is small

# (a file's first line, BOM and line break removed; the file's path) -> its column names.
ColumnsOf = Callable[[bytes, str], tuple[str, ...]]


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
    file; `line`: its 1-based line number, or 0 when unknown (a byte range not at the start);
    `columns`: the file's column names in file order, from its header, or None when the
    format's columns are the file's (a headerless format)."""

    source: str
    offset: int
    line: int
    data: bytes
    columns: tuple[str, ...] | None = None

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


def line_blocks(
    parts: Iterator[bytes],
    source: str,
    offset: int,
    line: int,
    block_rows: int,
    columns: tuple[str, ...] | None = None,
) -> Iterator[LineBlock]:
    """Blocks of up to `block_rows` whole lines from byte `parts` that start at a line start
    (`offset`, `line`, `columns` as in LineBlock). A last line without a newline gets one."""
    pending = b""
    for part in _terminated(parts):
        pending += part
        ends = np.flatnonzero(np.frombuffer(pending, dtype=np.uint8) == 0x0A)
        start = 0
        for cut in range(block_rows - 1, len(ends), block_rows):
            end = int(ends[cut]) + 1
            yield LineBlock(source, offset, line, pending[start:end], columns)
            offset, line, start = offset + end - start, line + block_rows if line else 0, end
        pending = pending[start:]
        unfinished = len(pending) - (int(ends[-1]) + 1 - start if len(ends) > 0 else 0)
        if unfinished > MAX_LINE_BYTES:
            raise CorruptInput(
                f"{source}: no line break in the {unfinished} bytes after byte offset "
                f"{offset}: not a delimited text file (or a line over {MAX_LINE_BYTES} bytes)"
            )
    if pending:
        yield LineBlock(source, offset, line, pending, columns)


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
    header: ColumnsOf | None,
    block_rows: int,
) -> Iterator[LineBlock]:
    """Every line of a whole file as blocks; a leading BOM is skipped. With a `header`, the
    first line is the file's header: `header(line, path)` gives the column names every block
    carries (and raises when they do not fit). Line numbers count the header line."""
    parts = chunks(raw, path)
    first, bom = _first_bytes(parts, path, whole_line=header is not None)
    offset, line, columns = bom, 1, None
    if header is not None and first:
        end = _line_end(first)
        columns = header(_line_text(first[:end]), path)
        first, offset, line = first[end:], offset + end, 2
    yield from line_blocks(_prepend(first, parts), path, offset, line, block_rows, columns)


def first_line(raw: BinaryIO, path: str) -> bytes | None:
    """The first line of a file (decompressed by `path`'s extension; BOM and line break
    removed), or None when the file holds no byte. Reads only as far as that line."""
    first, _ = _first_bytes(chunks(raw, path, HEADER_CHUNK_BYTES), path, whole_line=True)
    return _line_text(first[: _line_end(first)]) if first else None


def _first_bytes(parts: Iterator[bytes], path: str, whole_line: bool) -> tuple[bytes, int]:
    """The first bytes of `parts` without a leading BOM (the whole first line when
    `whole_line`; else enough to see the BOM), and the BOM's length."""
    first = b""
    for part in parts:
        first += part
        if len(first) > len(BOM) and (not whole_line or b"\n" in first):
            break
        if len(first) > MAX_LINE_BYTES:
            raise CorruptInput(
                f"{path}: no line break in the first {len(first)} bytes: not a delimited text "
                f"file (or a header over {MAX_LINE_BYTES} bytes)"
            )
    if first.startswith(BOM):
        return first[len(BOM) :], len(BOM)
    return first, 0


def _line_end(data: bytes) -> int:
    """Where the first line of `data` ends, its line break included."""
    cut = data.find(b"\n")
    return len(data) if cut < 0 else cut + 1


def _line_text(line: bytes) -> bytes:
    return line.rstrip(b"\n").removesuffix(b"\r")


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def text_ends(data: bytes, starts: np.ndarray) -> np.ndarray:
    """End of each line's text in a block's `data`: before its "\\n", or before "\\r\\n"."""
    ends = np.append(starts[1:], len(data)) - 1  # the newline
    buffer = np.frombuffer(data, dtype=np.uint8)
    crlf = (ends > starts) & (buffer[np.maximum(ends - 1, 0)] == 0x0D)
    return ends - crlf
