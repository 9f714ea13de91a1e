"""The scoring job's statistics: per block, its rows (`accounting.RowCounts`), the sum of its
probabilities and the labelled rows' `metrics.summary.ScoreSummary` (the metrics `ue evaluate`
reports too), merged by `accounting.MergeFn` on any number of workers, never by collecting the
scores in one place; and stats.json from their sum.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.accounting import FilesRead, RowCounts
from unified_embedding.contract import artifacts
from unified_embedding.metrics.summary import ScoreSummary
from unified_embedding.rows.validation import CheckedBlock


@dataclass
class ScoreStats:
    """What one block adds to the statistics, or the sum of many. `labelled`: the metrics'
    summary of the rows that carry a label (an empty label cell is allowed when scoring)."""

    rows: RowCounts = field(default_factory=RowCounts)
    sum_probability: float = 0.0
    labelled: ScoreSummary = field(default_factory=ScoreSummary)

    @classmethod
    def of(cls, checked: CheckedBlock, probability: np.ndarray) -> ScoreStats:
        """A block's statistics from its valid rows' probabilities."""
        return cls(
            rows=RowCounts.of(checked),
            sum_probability=float(np.asarray(probability, np.float64).sum()),
            labelled=ScoreSummary.of(checked.labels, probability),
        )

    def merge(self, other: ScoreStats) -> ScoreStats:
        """Adds `other` (left alone) into these statistics and returns them."""
        self.rows.merge(other.rows)
        self.sum_probability += other.sum_probability
        self.labelled.merge(other.labelled)
        return self

    def document(self, header: dict[str, Any], read: FilesRead | None = None) -> dict[str, Any]:
        """The stats.json document; raises if scored + dead-lettered rows != rows read, and,
        given what the reader `read`, unless each matched file was read in full."""
        counts = self.rows.document("scored", read)
        files = counts.pop("files")
        scored = self.rows.kept
        return {
            **counts,
            "rows_labelled": self.labelled.rows,
            "mean_probability": self.sum_probability / scored if scored else None,
            "metrics": self.labelled.metrics(),
            **header,
            "files": files,
        }


@dataclass(frozen=True)
class ScoreDocuments:
    """The merged ScoreStats -> stats.json (`jobs.WriteDocuments`); `header`: the model and
    the output's format."""

    header: dict[str, Any]

    def __call__(self, total: ScoreStats, read: FilesRead) -> dict[str, str]:
        stats = total.document(self.header, read)
        return {artifacts.STATS_FILE: json.dumps(stats, indent=2, allow_nan=False) + "\n"}
