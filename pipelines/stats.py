"""Dataset statistics written to `stats.json`, and the rows-in = rows-out invariant."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam

from unified_embedding.budget import split_rows_equally
from unified_embedding.spec import FeatureSpec
from unified_embedding.validation import REASONS, ValidRow


class RowStatsFn(beam.CombineFn):
    """Valid rows -> rows, clicks and empty values per field (spec order)."""

    def __init__(self, fields: int) -> None:
        self._fields = fields

    def create_accumulator(self) -> list[int]:
        return [0, 0] + [0] * self._fields

    def add_input(self, acc: list[int], row: ValidRow) -> list[int]:
        acc[0] += 1
        acc[1] += int(row.label)
        for i, value in enumerate(row.values):
            if value == "":
                acc[2 + i] += 1
        return acc

    def merge_accumulators(self, accumulators: Iterable[list[int]]) -> list[int]:
        return [sum(values) for values in zip(*accumulators, strict=True)]

    def extract_output(self, acc: list[int]) -> list[int]:
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


def build_stats(
    spec: FeatureSpec,
    rows_read: int,
    row_stats: list[int],
    dead: Mapping[str, int],
    split_rows: Mapping[str, int],
    distinct: Mapping[str, int],
) -> dict[str, Any]:
    """The stats.json document; raises if valid + dead-lettered rows != rows read."""
    valid = row_stats[0]
    dead_total = sum(dead.values())
    if valid + dead_total != rows_read:
        raise RuntimeError(
            f"rows lost: {rows_read} read but {valid} valid + {dead_total} dead-lettered"
        )
    if sum(split_rows.values()) != valid:
        raise RuntimeError(f"rows lost in the split: {dict(split_rows)} from {valid} valid rows")
    collisions = collision_rates(spec, distinct)
    fields = {}
    for i, f in enumerate(spec.fields):
        entry: dict[str, Any] = {
            "kind": f.kind,
            "missing_rate": row_stats[2 + i] / valid if valid else 0.0,
        }
        if f.is_categorical:
            entry["approx_distinct"] = distinct.get(f.name, 0)
            entry.update(collisions[f.name])
        fields[f.name] = entry
    return {
        "rows_read": rows_read,
        "rows_valid": valid,
        "rows_dead": dead_total,
        "dead_by_reason": {r: dead.get(r, 0) for r in REASONS},
        "rows_by_split": dict(split_rows),
        "label_rate": row_stats[1] / valid if valid else 0.0,
        "table": spec.table.to_dict(),
        "spec_fingerprint": spec.fingerprint,
        "fields": fields,
    }
