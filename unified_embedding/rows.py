"""Raw rows of a delimited file (any schema) as columns of strings, plus labels.

For in-process work on small files: the demo, `ue evaluate`, tests. The Beam pipeline is the
path for large inputs and for dead-lettering bad rows; this reader stops at the first bad row.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unified_embedding.spec import FeatureSpec


@dataclass(frozen=True)
class RawRows:
    """`columns[name]` is an object array of the raw strings; `labels` float32 0/1."""

    columns: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray) -> RawRows:
        return RawRows({k: v[index] for k, v in self.columns.items()}, self.labels[index])


def parse_lines(spec: FeatureSpec, lines: Iterable[str], source: str = "<input>") -> RawRows:
    """Rows of `spec.input_format` -> columns; a bad row raises ValueError naming line and value."""
    fmt = spec.input_format
    reader = csv.reader(lines, delimiter=fmt.delimiter, quoting=csv.QUOTE_NONE)
    rows = list(reader)
    first = 1 if fmt.header else 0
    if fmt.header and rows and tuple(rows[0]) != fmt.columns:
        raise ValueError(
            f"{source}: header does not match schema `{spec.name}`. Received: {rows[0][:8]}..."
        )
    body = rows[first:]
    for number, row in enumerate(body, start=first + 1):
        if len(row) != len(fmt.columns):
            raise ValueError(
                f"{source}:{number}: expected {len(fmt.columns)} columns, found {len(row)}"
            )
    table = np.array(body, dtype=object).reshape(len(body), len(fmt.columns))
    columns = {name: table[:, i] for i, name in enumerate(fmt.columns)}
    labels = columns[spec.label]
    bad = [(n, v) for n, v in enumerate(labels, start=first + 1) if v not in ("0", "1")]
    if bad:
        raise ValueError(
            f"{source}:{bad[0][0]}: label `{spec.label}` should be 0 or 1. Received: {bad[0][1]!r}"
        )
    return RawRows({f.name: columns[f.name] for f in spec.fields}, labels.astype(np.float32))


def read_rows(spec: FeatureSpec, path: str | Path) -> RawRows:
    """A whole (optionally gzipped) file of `spec`'s format."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        return parse_lines(spec, text, source=str(path))


def parse_bytes(spec: FeatureSpec, data: bytes) -> RawRows:
    return parse_lines(spec, io.StringIO(data.decode("utf-8"), newline=""))
