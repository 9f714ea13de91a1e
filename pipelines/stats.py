"""Dataset statistics written to `stats.json`: partial statistics per block, merged by one
CombineFn on any number of workers, and the rows-in = rows-out invariant, in total and per
input file (`accounting`)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np

from pipelines.accounting import FileRows, FilesRead, check_files, files_document, merge_files
from pipelines.sketch import HyperLogLog
from unified_embedding.budget.plan import split_rows_equally
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.validation import REASONS


@dataclass
class BlockStats:
    """Counts of one block (or of many, merged). `split_clicks`: the label sum per split;
    `missing` is per field in spec order; `distinct` holds one sketch per categorical field;
    `files`: rows per input file."""

    rows_read: int = 0
    rows_valid: int = 0
    clicks: float = 0.0
    dead: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    splits: dict[str, int] = field(default_factory=dict)
    split_clicks: dict[str, float] = field(default_factory=dict)
    missing: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distinct: dict[str, HyperLogLog] = field(default_factory=dict)
    files: dict[str, FileRows] = field(default_factory=dict)

    def merge(self, other: BlockStats) -> BlockStats:
        self.rows_read += other.rows_read
        self.rows_valid += other.rows_valid
        self.clicks += other.clicks
        for reason, count in other.dead.items():
            self.dead[reason] = self.dead.get(reason, 0) + count
        for split, count in other.splits.items():
            self.splits[split] = self.splits.get(split, 0) + count
        for split, clicks in other.split_clicks.items():
            self.split_clicks[split] = self.split_clicks.get(split, 0.0) + clicks
        if len(other.missing):
            self.missing = (
                other.missing.copy() if not len(self.missing) else self.missing + other.missing
            )
        for name, sketch in other.distinct.items():
            if name in self.distinct:
                self.distinct[name].merge(sketch)
            else:
                self.distinct[name] = HyperLogLog(sketch.precision, sketch.registers.copy())
        merge_files(self.files, other.files)
        return self


class MergeStatsFn(beam.CombineFn):
    """BlockStats -> their sum (distinct-value sketches merged)."""

    def create_accumulator(self) -> BlockStats:
        return BlockStats()

    def add_input(self, acc: BlockStats, stats: BlockStats) -> BlockStats:
        return acc.merge(stats)

    def merge_accumulators(self, accumulators: Iterable[BlockStats]) -> BlockStats:
        total = BlockStats()
        for acc in accumulators:
            total.merge(acc)
        return total

    def extract_output(self, acc: BlockStats) -> BlockStats:
        return acc


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


def check_rows(total: BlockStats) -> None:
    """Raises unless every row read is valid or dead-lettered, and every valid row is in a split."""
    dead = sum(total.dead.values())
    if total.rows_valid + dead != total.rows_read:
        raise RuntimeError(
            f"rows lost: {total.rows_read} read but {total.rows_valid} valid + {dead} dead-lettered"
        )
    if total.splits and sum(total.splits.values()) != total.rows_valid:
        raise RuntimeError(
            f"rows lost in the split: {dict(total.splits)} from {total.rows_valid} valid rows"
        )


def build_stats(
    spec: FeatureSpec,
    total: BlockStats,
    splits: Iterable[str],
    read: FilesRead | None = None,
) -> dict[str, Any]:
    """The stats.json document; raises if valid + dead-lettered rows != rows read, and, given
    what the reader `read`, unless each matched file was read in full (`accounting`)."""
    check_rows(total)
    if read is not None:
        check_files(total.files, read, "valid")
    valid = total.rows_valid
    distinct = {name: sketch.estimate() for name, sketch in total.distinct.items()}
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
    return {
        "rows_read": total.rows_read,
        "rows_valid": valid,
        "rows_dead": sum(total.dead.values()),
        "dead_by_reason": {r: total.dead.get(r, 0) for r in REASONS},
        "rows_by_split": {s: total.splits.get(s, 0) for s in splits},
        "positives_by_split": {s: total.split_clicks.get(s, 0.0) for s in splits},
        "label_rate": total.clicks / valid if valid else 0.0,
        "table": spec.table.to_dict(),
        "spec_fingerprint": spec.fingerprint,
        "fields": fields,
        "files": files_document(total.files, "rows_valid", read),
    }
