"""Validate blocks of lines against the spec: valid rows on, bad rows to dead letters."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
from apache_beam.metrics import Metrics

from unified_embedding.contract import artifacts
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.textfile import LineBlock
from unified_embedding.rows.validation import REASONS, BlockValidator, CheckedBlock

DEAD_LETTERS = artifacts.DEAD_LETTERS_PREFIX  # the tag names the files its rows go to


class ValidateBlockFn(beam.DoFn):
    """Main output: one `CheckedBlock` per block (also when no row is valid: it carries the
    block's counts); tagged output `dead_letters`: one JSON line per dead row."""

    def __init__(self, spec_json: str, label_required: bool = True) -> None:
        self._spec_json = spec_json
        self._label_required = label_required
        self._valid = Metrics.counter("validate", "rows_valid")
        self._dead = {r: Metrics.counter("validate", f"dead_{r}") for r in REASONS}

    def setup(self) -> None:
        spec = FeatureSpec.from_json(self._spec_json)
        self._validator = BlockValidator(spec, self._label_required)

    def process(self, block: LineBlock) -> Iterator[CheckedBlock | beam.pvalue.TaggedOutput]:
        checked = self._validator.validate(block)
        self._valid.inc(len(checked.rows))
        for reason, count in checked.dead_counts().items():
            if count:
                self._dead[reason].inc(count)
        for letter in checked.dead_letters():
            yield beam.pvalue.TaggedOutput(DEAD_LETTERS, letter)
        yield checked


class ValidateBlocks(beam.PTransform):
    """LineBlocks -> CheckedBlocks (main) and dead-letter JSON lines (`dead_letters`)."""

    def __init__(self, spec: FeatureSpec, label_required: bool = True):
        super().__init__()
        self._fn = ValidateBlockFn(spec.to_json(), label_required)

    def expand(self, blocks: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return blocks | "ValidateBlock" >> beam.ParDo(self._fn).with_outputs(
            DEAD_LETTERS, main="valid"
        )
