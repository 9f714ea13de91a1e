"""Validate raw lines against the spec: good rows out, bad rows to dead letters with a reason."""

from __future__ import annotations

import json
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipelines.read import RawLine
from unified_embedding.spec import FeatureSpec
from unified_embedding.validation import REASONS, InvalidRow, RowValidator, ValidRow

DEAD_LETTERS = "dead_letters"


def dead_letter(line: RawLine, reason: str, detail: str) -> str:
    """One JSON line: where the row came from, its raw text and why it was rejected."""
    return json.dumps(
        {
            "source": line.source,
            "line": line.line,
            "raw": line.data.decode("utf-8", errors="backslashreplace"),
            "reason": reason,
            "detail": detail,
        }
    )


class ValidateFn(beam.DoFn):
    """Main output: `ValidRow`; tagged output `dead_letters`: JSON lines."""

    def __init__(self, spec_json: str, max_field_chars: int, split_column: str | None) -> None:
        self._spec_json = spec_json
        self._max_field_chars = max_field_chars
        self._split_column = split_column
        self._valid = Metrics.counter("preprocess", "rows_valid")
        self._dead = {r: Metrics.counter("preprocess", f"dead_{r}") for r in REASONS}

    def setup(self) -> None:
        spec = FeatureSpec.from_json(self._spec_json)
        self._validator = RowValidator(spec, self._max_field_chars, self._split_column)

    def process(self, line: RawLine) -> Iterator[ValidRow | beam.pvalue.TaggedOutput]:
        try:
            row = self._validator.validate(line.data)
        except InvalidRow as e:
            self._dead[e.reason].inc()
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, dead_letter(line, e.reason, str(e)))
            return
        self._valid.inc()
        yield row
