"""The preprocessing job's statistics: counts per block (rows, clicks, splits, missing cells,
distinct-value sketches), merged by `accounting.MergeFn` on any number of workers, and the two
documents written from their sum once the distinct counts are known: `stats.json`, and
`spec.json` with the shared table `ue train` will use.

Without `--budget` the table is sized from the data (`budget.data_budget` of the distinct
counts); either way spec.json states the table, and stats.json's `table` and
`spec_fingerprint` are spec.json's. The records hold fingerprints, which no table size moves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.accounting import FilesRead, RowCounts
from pipelines.sketch import HyperLogLog
from pipelines.split import Split
from unified_embedding.budget.params import split_rows_equally
from unified_embedding.budget.plan import DATA_BUDGET, data_budget, plan_budget
from unified_embedding.contract import artifacts
from unified_embedding.contract.spec import FeatureSpec


@dataclass
class BlockStats:
    """Counts of one block (or of many, merged). `split_clicks`: the label sum per split;
    `without_split_value`: rows a column split put in train for lack of a value; `missing` is
    per field in spec order; `distinct` holds one sketch per categorical field."""

    rows: RowCounts = field(default_factory=RowCounts)
    clicks: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)
    split_clicks: dict[str, float] = field(default_factory=dict)
    without_split_value: int = 0
    missing: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distinct: dict[str, HyperLogLog] = field(default_factory=dict)

    def merge(self, other: BlockStats) -> BlockStats:
        """Adds `other` (left alone) into these counts and returns them."""
        self.rows.merge(other.rows)
        self.clicks += other.clicks
        for split, count in other.splits.items():
            self.splits[split] = self.splits.get(split, 0) + count
        for split, clicks in other.split_clicks.items():
            self.split_clicks[split] = self.split_clicks.get(split, 0.0) + clicks
        self.without_split_value += other.without_split_value
        if len(other.missing):
            self.missing = (
                other.missing.copy() if not len(self.missing) else self.missing + other.missing
            )
        for name, sketch in other.distinct.items():
            if name in self.distinct:
                self.distinct[name].merge(sketch)
            else:
                self.distinct[name] = HyperLogLog(sketch.precision, sketch.registers.copy())
        return self

    def distinct_counts(self) -> dict[str, int]:
        return {name: sketch.estimate() for name, sketch in self.distinct.items()}


def collision_rates(spec: FeatureSpec, distinct: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """Expected collisions per categorical field with uniform hashing, per layout.

    Unified: N = sum over hashed fields of distinct values x probes row draws share B rows; a
    probe's row is shared with another draw with probability 1 - exp(-(N - 1) / B), and all k_f
    probes of a value collide with probability that to the k_f. Per-feature hashing: field f's
    D_f values in its own R_f rows (the same budget split equally): 1 - exp(-(D_f - 1) / R_f).
    """
    rows = spec.table.rows
    draws = sum(distinct.get(f.name, 0) * f.probes for f in spec.categorical_fields if f.is_hashed)
    per_probe = 1.0 - math.exp(-max(draws - 1, 0) / rows)
    per_feature_rows = split_rows_equally(spec, spec.table.params)
    out: dict[str, dict[str, Any]] = {}
    for f in spec.categorical_fields:
        d = distinct.get(f.name, 0)
        own = per_feature_rows[f.name]
        entry: dict[str, Any] = {
            "per_feature_rows": own,
            "per_feature_collision_rate": 1.0 - math.exp(-max(d - 1, 0) / own),
        }
        if f.is_hashed:
            entry["unified_probe_collision_rate"] = per_probe
            entry["unified_all_probes_collide_rate"] = per_probe**f.probes
        else:
            entry["unified_collision_rate"] = 0.0  # its own vocabulary table
        out[f.name] = entry
    return out


def sized_by_data(spec: FeatureSpec, distinct: Mapping[str, int]) -> tuple[FeatureSpec, int]:
    """`spec` with the shared table of `budget.data_budget` (the budget when none is given),
    and that budget in bytes. A field without a sketch (no valid row) has no distinct value."""
    counts = {f.name: distinct.get(f.name, 0) for f in spec.categorical_fields if f.is_hashed}
    budget = data_budget(spec, counts)
    return spec.replace(table=plan_budget(spec, budget).table), budget


def build_stats(
    spec: FeatureSpec, total: BlockStats, read: FilesRead | None = None
) -> dict[str, Any]:
    """The stats.json document of records written under `spec` (its final table); raises if
    valid + dead-lettered rows != rows read or a valid row is in no split, and, given what the
    reader `read`, unless each matched file was read in full (`accounting`)."""
    counts = total.rows.document("valid", read)
    valid = total.rows.kept
    if total.splits and sum(total.splits.values()) != valid:
        raise RuntimeError(f"rows lost in the split: {dict(total.splits)} from {valid} valid rows")
    distinct = total.distinct_counts()
    collisions = collision_rates(spec, distinct)
    missing = total.missing if len(total.missing) else np.zeros(len(spec.fields), np.int64)
    fields = {}
    for i, f in enumerate(spec.fields):
        entry: dict[str, Any] = {
            "kind": f.kind,
            "missing_rate": float(missing[i]) / valid if valid else 0.0,
        }
        if f.is_categorical:
            entry["approx_distinct"] = distinct.get(f.name, 0)
            entry.update(collisions[f.name])
        fields[f.name] = entry
    files = counts.pop("files")
    return {
        **counts,
        "rows_by_split": {s: total.splits.get(s, 0) for s in artifacts.SPLITS},
        "positives_by_split": {s: total.split_clicks.get(s, 0.0) for s in artifacts.SPLITS},
        "label_rate": total.clicks / valid if valid else 0.0,
        "table": spec.table.to_dict(),
        "spec_fingerprint": spec.fingerprint,
        "fields": fields,
        "files": files,
    }


def with_split(stats: dict[str, Any], split: Split, total: BlockStats) -> dict[str, Any]:
    """`stats` with how the split was made (`split`: its method, whether the eval rows are the
    train rows' future, its settings) and, when it goes by file, each file's split."""
    for path, entry in stats["files"].items():
        which = split.file_split(path)
        if which is not None:
            entry["split"] = which
    return {**stats, "split": split.document(total.without_split_value)}


@dataclass(frozen=True)
class PreprocessDocuments:
    """The merged BlockStats -> spec.json and stats.json (`jobs.WriteDocuments`). With
    `size_table` (no `--budget`), spec.json's table is sized from the distinct counts and
    stats.json also carries the budget it came from (`data_budget_bytes`); with a `split`,
    how the split was made (`with_split`)."""

    spec_json: str
    size_table: bool
    split: Split | None = None

    def __call__(self, total: BlockStats, read: FilesRead) -> dict[str, str]:
        spec = FeatureSpec.from_json(self.spec_json)
        sized: dict[str, int] = {}
        if self.size_table:
            spec, sized[DATA_BUDGET] = sized_by_data(spec, total.distinct_counts())
        stats = {**build_stats(spec, total, read), **sized}
        if self.split is not None:
            stats = with_split(stats, self.split, total)
        return {
            artifacts.SPEC_FILE: spec.to_json(),
            artifacts.STATS_FILE: json.dumps(stats, indent=2, allow_nan=False) + "\n",
        }
