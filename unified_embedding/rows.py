"""Raw rows of a delimited file (any schema) as columns of strings, plus labels.

For in-process work on small files: the demo, `ue evaluate`, tests. Rows must meet the same
rules as in the Beam pipeline (`validation.RowValidator`); the pipeline dead-letters a bad row,
this reader stops at the first one with an error naming the line, field and value.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unified_embedding.spec import FeatureSpec
from unified_embedding.validation import InvalidRow, RowValidator

MAX_FIELD_CHARS = 1000  # as the pipeline's default --max-field-chars


@dataclass(frozen=True)
class RawRows:
    """`columns[name]` is an object array of the raw strings; `labels` float32 0/1."""

    columns: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray) -> RawRows:
        return RawRows({k: v[index] for k, v in self.columns.items()}, self.labels[index])


def parse_lines(spec: FeatureSpec, lines: Iterable[bytes], source: str = "<input>") -> RawRows:
    """Lines (bytes, newline optional) of `spec.input_format` -> columns; a bad row raises
    ValueError naming the line and the problem."""
    fmt = spec.input_format
    validator = RowValidator(spec, MAX_FIELD_CHARS, split_column=None)
    values, labels = [], []
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r\n")
        if number == 1 and fmt.header:
            if line.decode("utf-8", errors="replace").split(fmt.delimiter) != list(fmt.columns):
                raise ValueError(
                    f"{source}: header does not match schema `{spec.name}`. "
                    f"Received: {line[:80]!r}..."
                )
            continue
        try:
            row = validator.validate(line)
        except InvalidRow as e:
            raise ValueError(f"{source}:{number}: {e}") from None
        values.append(row.values)
        labels.append(row.label)
    table = np.array(values, dtype=object).reshape(len(values), len(spec.fields))
    columns = {f.name: table[:, i] for i, f in enumerate(spec.fields)}
    return RawRows(columns, np.array(labels, dtype=np.float32))


def read_rows(spec: FeatureSpec, path: str | Path) -> RawRows:
    """A whole (optionally gzipped) file of `spec`'s format."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as raw:
        return parse_lines(spec, raw, source=str(path))


def parse_bytes(spec: FeatureSpec, data: bytes) -> RawRows:
    return parse_lines(spec, io.BytesIO(data))
