"""`write_days`: one gzipped Criteo TSV file per day into a folder, days that drift
(see `drift.py`), with a report per day.

    OUT/day-01.tsv.gz  OUT/day-02.tsv.gz  ...   (3 digits from 100 days on, and so on)

Day 1's file holds the same bytes as `write_tsv(OUT/x.tsv.gz, rows, config)`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unified_embedding.synthetic.batches import BLOCK_ROWS
from unified_embedding.synthetic.config import DEFAULT_CONFIG, SyntheticConfig
from unified_embedding.synthetic.days import day_models
from unified_embedding.synthetic.drift import DEFAULT_DRIFT, DriftConfig, check_day
from unified_embedding.synthetic.writer import GenerateReport, write_rows

DAY_FILE = "day-{day:0{width}d}.tsv.gz"


def day_path(folder: str | os.PathLike[str], day: int, days: int) -> Path:
    """The file of day `day` of `days` in `folder` (numbers padded to sort by day)."""
    return Path(folder) / DAY_FILE.format(day=day, width=max(2, len(str(days))))


@dataclass(frozen=True)
class DayReport:
    """What `write_days` wrote for one day.

    Attributes:
      day: the day (1 = the undrifted data).
      path: the day's file.
      generated: rows, label rate and planted AUC (the ceiling) as `write_tsv` reports them.
      base_logit: the day's planted bias.
      new_id_share: share of present values in the fields that get new IDs born this day.
      rows_with_new_values: share of rows holding a value new since day 1.
    """

    day: int
    path: str
    generated: GenerateReport
    base_logit: float
    new_id_share: float
    rows_with_new_values: float

    def to_dict(self) -> dict[str, int | float | str]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        generated = fields.pop("generated").to_dict()
        return {**fields, **generated}


def write_days(
    folder: str | os.PathLike[str],
    days: int,
    rows: int,
    config: SyntheticConfig = DEFAULT_CONFIG,
    drift: DriftConfig = DEFAULT_DRIFT,
    chunk_rows: int = 8 * BLOCK_ROWS,
    on_day: Callable[[DayReport], None] | None = None,
) -> list[DayReport]:
    """Writes days 1..`days` of `rows` rows each into `folder` (created if missing), one file
    at a time, streamed in chunks as `write_tsv` does; calls `on_day` as each is complete."""
    if days < 1:
        raise ValueError(f"`days` should be >= 1. Received: `days={days}`")
    check_day(config, drift, days)
    target = Path(folder)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"`--out` should be a folder with `--days`. Received: {target}")
    target.mkdir(parents=True, exist_ok=True)
    reports = []
    for model in day_models(config, drift):
        path = day_path(target, model.day, days)
        generated, counts = write_rows(path, rows, config, chunk_rows, model)
        report = DayReport(
            day=model.day,
            path=str(path),
            generated=generated,
            base_logit=model.model.bias,
            new_id_share=counts.born_today / counts.present if counts.present else math.nan,
            rows_with_new_values=counts.rows_with_new_values / rows if rows else math.nan,
        )
        reports.append(report)
        if on_day is not None:
            on_day(report)
        if model.day == days:
            break
    return reports
