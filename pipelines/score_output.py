"""The scoring job's output: one Arrow table per block (keys, probability, optional top
attention pairs), written as CSV or Parquet shards through Beam's file-based sink (temporary
files, renamed into place only when the whole job succeeds).

Columns:
    key columns   `source` (the row's file) and `offset` (its byte offset in the
                  decompressed file) by default, or input columns by name (`--key-columns`)
    probability   float32
    pair_<i>_source, pair_<i>_target, pair_<i>_weight    i = 1..k with `--explain-top-k k`
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

import apache_beam as beam
import pyarrow as pa
from apache_beam.coders import PickleCoder
from apache_beam.io import filebasedsink
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.iobase import Write
from apache_beam.ml.inference.base import PredictionResult

from pipelines.inference import BlockPredictions
from pipelines.score_stats import ScoreStats
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.validation import CheckedBlock

PROBABILITY = "probability"
STATS = "stats"  # SummarizeBlockFn's tagged output


@dataclass(frozen=True)
class RowKey:
    """A key column that is not an input column: where the row came from."""

    type: pa.DataType
    values: Callable[[CheckedBlock], pa.Array]


ROW_KEYS: dict[str, RowKey] = {
    "source": RowKey(pa.string(), lambda c: pa.repeat(pa.scalar(c.block.source), len(c.rows))),
    "offset": RowKey(pa.int64(), lambda c: pa.array(c.offsets(), pa.int64())),
}


def check_key_columns(spec: FeatureSpec, names: Sequence[str]) -> None:
    """Each key names an input column or one of ROW_KEYS (an input column wins)."""
    known = set(spec.input_format.columns) | set(ROW_KEYS)
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(
            f"`--key-columns` should name input columns or {sorted(ROW_KEYS)}. "
            f"Received: {list(names)}; the input columns are {list(spec.input_format.columns)}"
        )
    reserved = {PROBABILITY} | {n for n in names if n.startswith("pair_")}
    clash = sorted(set(names) & reserved)
    if clash:
        raise ValueError(f"`--key-columns` clash with output columns. Received: {clash}")


class ScoreTable:
    """The output schema and how one block becomes a table of it."""

    def __init__(self, spec: FeatureSpec, key_columns: Sequence[str], explain_top_k: int) -> None:
        check_key_columns(spec, key_columns)
        self.key_columns = tuple(key_columns)
        self.explain_top_k = explain_top_k
        self._inputs = set(spec.input_format.columns)
        names = spec.field_names
        fields = len(names)
        if not 0 <= explain_top_k <= fields * (fields - 1):
            raise ValueError(
                f"`--explain-top-k` should be in [0, {fields * (fields - 1)}] (ordered pairs of "
                f"{fields} fields). Received: {explain_top_k}"
            )
        # pair index = source * fields + target, as BlockPredictions gives it
        self._sources = pa.array([names[i // fields] for i in range(fields * fields)])
        self._targets = pa.array([names[i % fields] for i in range(fields * fields)])
        columns = [(n, self._key_type(n)) for n in self.key_columns]
        columns.append((PROBABILITY, pa.float32()))
        for i in range(1, explain_top_k + 1):
            columns += [
                (f"pair_{i}_source", pa.string()),
                (f"pair_{i}_target", pa.string()),
                (f"pair_{i}_weight", pa.float32()),
            ]
        self.schema = pa.schema(columns)

    def _key_type(self, name: str) -> pa.DataType:
        return pa.string() if name in self._inputs else ROW_KEYS[name].type

    def table(self, checked: CheckedBlock, predictions: BlockPredictions) -> pa.Table:
        arrays: list[pa.Array] = []
        for name in self.key_columns:
            if name in self._inputs:
                arrays.append(checked.columns[name])
            else:
                arrays.append(ROW_KEYS[name].values(checked))
        arrays.append(pa.array(predictions.probability, pa.float32()))
        if self.explain_top_k:
            assert predictions.pairs is not None and predictions.weights is not None
            for i in range(self.explain_top_k):
                index = pa.array(predictions.pairs[:, i], pa.int32())
                arrays += [
                    self._sources.take(index),
                    self._targets.take(index),
                    pa.array(predictions.weights[:, i], pa.float32()),
                ]
        return pa.Table.from_arrays(arrays, schema=self.schema)


class TableFormat:
    """A file format for Arrow tables: its suffix and a writer over a binary stream."""

    suffix = ""

    def writer(self, stream: BinaryIO, schema: pa.Schema) -> Any:
        raise NotImplementedError


class CsvFormat(TableFormat):
    suffix = ".csv"

    def writer(self, stream: BinaryIO, schema: pa.Schema) -> Any:
        import pyarrow.csv as pa_csv

        return pa_csv.CSVWriter(stream, schema)


class ParquetFormat(TableFormat):
    suffix = ".parquet"

    def writer(self, stream: BinaryIO, schema: pa.Schema) -> Any:
        import pyarrow.parquet as pq

        return pq.ParquetWriter(stream, schema, compression="snappy")


# `options.SCORE_FORMATS` lists these names for `--format` (Beam-free, for a fast refusal).
FORMATS: dict[str, TableFormat] = {"csv": CsvFormat(), "parquet": ParquetFormat()}


class _TableHandle:
    """A format writer over a Beam file handle; closing it closes both."""

    def __init__(self, raw: BinaryIO, writer: Any) -> None:
        self._raw = raw
        self._writer = writer

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()
        self._raw.close()


class TableSink(filebasedsink.FileBasedSink):
    """Arrow tables -> `<prefix>-SSSSS-of-NNNNN<suffix>` files of one schema."""

    def __init__(self, prefix: str, file_format: str, schema: pa.Schema) -> None:
        self._format = FORMATS[file_format]
        super().__init__(
            file_path_prefix=prefix,
            coder=PickleCoder(),  # unused: records are written as tables
            file_name_suffix=self._format.suffix,
            mime_type="application/octet-stream",
            compression_type=CompressionTypes.UNCOMPRESSED,
        )
        self._schema = schema

    def open(self, temp_path: str) -> _TableHandle:
        raw = FileSystems.create(temp_path, self.mime_type, CompressionTypes.UNCOMPRESSED)
        stream = pa.PythonFile(raw, mode="w")
        return _TableHandle(raw, self._format.writer(stream, self._schema))

    def write_record(self, file_handle: _TableHandle, value: pa.Table) -> None:
        file_handle.write(value)

    def close(self, file_handle: _TableHandle) -> None:
        file_handle.close()


class WriteTables(beam.PTransform):
    """Arrow tables of `schema` -> CSV or Parquet shards under `prefix`."""

    def __init__(self, prefix: str, file_format: str, schema: pa.Schema) -> None:
        super().__init__()
        if file_format not in FORMATS:
            raise ValueError(
                f"`--format` should be one of {sorted(FORMATS)}. Received: `{file_format}`"
            )
        self._sink = TableSink(prefix, file_format, schema)

    def expand(self, tables: beam.PCollection) -> beam.pvalue.PDone:
        return tables | Write(self._sink)


class SummarizeBlockFn(beam.DoFn):
    """PredictionResult(CheckedBlock, BlockPredictions) -> the block's output table (main,
    when it has rows) and its ScoreStats (`stats`)."""

    def __init__(self, table: ScoreTable) -> None:
        self._table = table

    def process(self, result: PredictionResult) -> Iterator[Any]:
        checked = cast(CheckedBlock, result.example)
        predictions = cast(BlockPredictions, result.inference)
        yield beam.pvalue.TaggedOutput(STATS, ScoreStats.of(checked, predictions.probability))
        if len(checked.rows):
            yield self._table.table(checked, predictions)
