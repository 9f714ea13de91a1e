"""Raw rows of a delimited file (any schema) as columns of strings, plus labels.

For in-process work on small files: the demo, `ue evaluate`, tests. Rows meet the same rules,
parsed by the same block reader, as in the Beam jobs (`validation.BlockValidator`); the jobs
dead-letter a bad row, this reader stops at the first one with an error naming the line,
field and value.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.headers import header_of
from unified_embedding.rows.textfile import file_blocks
from unified_embedding.rows.validation import BlockValidator

BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class RawRows:
    """`columns[name]` is an object array of the raw strings; `labels` float32 0/1."""

    columns: dict[str, np.ndarray]
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, index: np.ndarray) -> RawRows:
        return RawRows({k: v[index] for k, v in self.columns.items()}, self.labels[index])


def concat_rows(parts: Sequence[RawRows]) -> RawRows:
    """Rows of several files of one schema, in order."""
    if len(parts) == 1:
        return parts[0]
    columns = {name: np.concatenate([p.columns[name] for p in parts]) for name in parts[0].columns}
    return RawRows(columns, np.concatenate([p.labels for p in parts]))


def read_stream(spec: FeatureSpec, raw: BinaryIO, source: str) -> RawRows:
    """A whole (optionally compressed, by `source`'s extension) stream of `spec`'s format; a
    bad row raises ValueError naming the line and the problem. With a header, columns are
    matched by name (`headers.py`): a missing column raises HeaderError naming it."""
    validator = BlockValidator(spec)
    parts: dict[str, list[np.ndarray]] = {f.name: [] for f in spec.fields}
    labels = []
    for block in file_blocks(raw, source, header_of(spec.input_format), BLOCK_ROWS):
        checked = validator.validate(block)
        if checked.dead:
            first = checked.dead[0]
            number = int(checked.line_numbers(np.array([first.line]))[0])
            raise ValueError(f"{source}:{number}: {first.detail}")
        for f in spec.fields:
            parts[f.name].append(checked.columns[f.name].to_numpy(zero_copy_only=False))
        labels.append(checked.labels)
    columns = {
        name: np.concatenate(p).astype(object) if p else np.array([], dtype=object)
        for name, p in parts.items()
    }
    return RawRows(columns, np.concatenate(labels) if labels else np.zeros(0, np.float32))


def read_rows(spec: FeatureSpec, path: str | Path) -> RawRows:
    """A whole (optionally gzipped) file of `spec`'s format."""
    with open(path, "rb") as raw:
        return read_stream(spec, raw, str(path))


def parse_bytes(spec: FeatureSpec, data: bytes) -> RawRows:
    return read_stream(spec, io.BytesIO(data), "<input>")
