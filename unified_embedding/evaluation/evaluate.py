"""`ue evaluate`: an exported model's metrics on labelled raw rows (any schema), the metrics
`ue score` reports on the same rows (`metrics.summary`: AUC within a reported bound, log loss,
calibration, ECE).

    report = evaluate("export/", "holdout.tsv", "criteo")   # a base (newest version) or a version
    print_report(report)   # JSON on stdout (null, never NaN); warnings on stderr
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, TextIO

from unified_embedding.evaluation.scoring import read_labelled, score_rows
from unified_embedding.exported.model import ExportedModel, raw_batches
from unified_embedding.metrics.summary import ScoreSummary, metric_warnings

__all__ = ["evaluate", "print_report", "raw_batches", "score_rows"]


def evaluate(
    model_path: str | Path, input_path: str | Path, schema: str | None = None
) -> dict[str, Any]:
    """The model's path and version, and the metrics over the rows of `input_path` (read with
    `schema`; None: the model's own format). Raises ValueError for a file without rows."""
    model = ExportedModel.load(model_path)
    rows = read_labelled(model, input_path, schema)
    metrics = ScoreSummary.of(rows.labels, model.score_rows(rows)).metrics()
    if metrics is None:
        raise ValueError(f"`--input {input_path}` holds no row to evaluate")
    return {"model": model.path, "version": model.version, **metrics}


def print_report(
    report: dict[str, Any], command: str = "ue evaluate", out: TextIO | None = None
) -> None:
    """The report as one JSON line on `out` (stdout), and a warning line on stderr for each
    metric not to be read as usual (`metrics.summary.metric_warnings`)."""
    # allow_nan=False: the summary writes null for an undefined metric; a NaN here is a bug
    print(json.dumps(report, allow_nan=False), file=out or sys.stdout)
    for warning in metric_warnings(report):
        print(f"{command}: warning: {warning}", file=sys.stderr)
