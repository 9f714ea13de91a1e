"""Read raw lines with their file and line number, as bytes (decoding is validation's job)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import apache_beam as beam
from apache_beam.io import fileio


class RawLine(NamedTuple):
    source: str
    line: int
    data: bytes


class ReadLinesFn(beam.DoFn):
    """A whole file per call, so line numbers are exact; gzip by extension.

    A valid header line (when the format has one) is skipped; anything else on line 1 is a row.
    """

    def __init__(self, header: bytes | None) -> None:
        self._header = header

    def process(self, readable: fileio.ReadableFile) -> Iterator[RawLine]:
        path = readable.metadata.path
        with readable.open(mime_type="application/octet-stream") as handle:
            for number, data in enumerate(iter(handle.readline, b""), start=1):
                data = data.rstrip(b"\r\n")
                if number == 1 and self._header is not None and data == self._header:
                    continue
                yield RawLine(path, number, data)


class ReadLines(beam.PTransform):
    """Every line of every file matching `pattern` (gzip by extension)."""

    def __init__(self, pattern: str, header: bytes | None) -> None:
        super().__init__()
        self._pattern = pattern
        self._header = header

    def expand(self, pipeline: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pipeline
            | "MatchFiles" >> fileio.MatchFiles(self._pattern)
            | "ReadMatches" >> fileio.ReadMatches()
            | "ReadLines" >> beam.ParDo(ReadLinesFn(self._header))
            # spread one big file's lines over the workers
            | "Rebalance" >> beam.Reshuffle()
        )
