"""Hash valid rows in blocks with the ONE shared function and serialize training records."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from unified_embedding.spec import FeatureSpec
from unified_embedding.validation import ValidRow

FINGERPRINTS = "fingerprints"
_LOG_EVERY_SECONDS = 10.0


def encode_rows(spec: FeatureSpec, rows: Sequence[ValidRow]) -> dict[str, object]:
    """Raw rows -> NumPy columns of `features.encode_features` (multi-valued: flat, lengths)."""
    import tensorflow as tf

    from unified_embedding.features import encode_features

    raw = {
        f.name: tf.constant([r.values[i] for r in rows], dtype=tf.string)
        for i, f in enumerate(spec.fields)
    }
    out: dict[str, object] = {}
    for name, value in encode_features(spec, raw).items():
        if isinstance(value, tf.RaggedTensor):
            out[name] = (value.flat_values.numpy(), value.row_lengths().numpy())
        else:
            out[name] = value.numpy()
    return out


class EncodeBlockFn(beam.DoFn):
    """A batch of rows -> one serialized block record; tagged output: distinct fingerprints
    per field in the batch, as (field, fingerprint) pairs for the distinct-value estimate."""

    def __init__(self, spec_json: str, split: str) -> None:
        self._spec_json = spec_json
        self._split = split
        self._rows = Metrics.counter("preprocess", f"rows_written_{split}")

    def setup(self) -> None:
        self._spec = FeatureSpec.from_json(self._spec_json)
        self._started = time.monotonic()
        self._last_log = self._started
        self._done = 0

    def process(self, rows: list[ValidRow]) -> Iterator[bytes | beam.pvalue.TaggedOutput]:
        from unified_embedding.records import encode_block

        columns = encode_rows(self._spec, rows)
        labels = np.array([r.label for r in rows], dtype=np.float32)
        yield encode_block(self._spec, columns, labels)  # type: ignore[arg-type]
        for f in self._spec.categorical_fields:
            value = columns[f.name]
            ids = value[0] if isinstance(value, tuple) else value
            for fingerprint in np.unique(np.asarray(ids)[:, 0]).tolist():
                yield beam.pvalue.TaggedOutput(FINGERPRINTS, (f.name, fingerprint))
        self._rows.inc(len(rows))
        self._log_progress(len(rows))

    def teardown(self) -> None:
        if getattr(self, "_done", 0):
            seconds = time.monotonic() - self._started
            logging.info("%s: %d rows encoded by this worker in %.1f s", self._split, self._done,
                         seconds)  # fmt: skip

    def _log_progress(self, rows: int) -> None:
        self._done += rows
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY_SECONDS:
            self._last_log = now
            logging.info(
                "%s: %d rows encoded by this worker, %.0f rows/s",
                self._split,
                self._done,
                self._done / (now - self._started),
            )


class EncodeBlocks(beam.PTransform):
    """Valid rows -> serialized block records (main) and (field, fingerprint) pairs (tagged)."""

    def __init__(self, spec: FeatureSpec, split: str, block_rows: int) -> None:
        super().__init__()
        self._spec_json = spec.to_json()
        self._split = split
        self._block_rows = block_rows

    def expand(self, rows: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return (
            rows
            | "Batch"
            >> beam.BatchElements(
                min_batch_size=min(256, self._block_rows), max_batch_size=self._block_rows
            )
            | "Encode"
            >> beam.ParDo(EncodeBlockFn(self._spec_json, self._split)).with_outputs(
                FINGERPRINTS, main="records"
            )
        )
