"""Size the shared table from a parameter budget, and count what each layout would cost.

plan = plan_budget(criteo(), parse_budget("1MB"))
plan.table                  # TableSpec(rows=..., width=8): the shared table for the budget
plan.params["unified"]      # == UnifiedEmbedding(spec.replace(table=plan.table)).count_params()
plan.params.per_feature     # per-field hash tables splitting the same budget equally
plan.params.collisionless   # one row per distinct value (needs cardinalities)
data_budget(spec, distinct) # the budget when none is given: sized from distinct counts

Each layout's count comes from its entry in `layouts.REGISTRY`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from unified_embedding.contract.spec import MAX_TABLE_ROWS, FeatureSpec, SpecError, TableSpec

BYTES_PER_PARAM = 4  # float32 tables
# The largest `--budget`: 1 TiB. An exported model carries its whole table, and a server (or
# `ue score`) loads it into one process's memory: a larger budget is a slip of units, not a
# plan. Tables are also bounded by rows (`spec.MAX_TABLE_ROWS` per sub-table): `plan_budget`.
MAX_BUDGET_BYTES = 2**40
# The shared table's parameters per distinct value when no budget is given (see `data_budget`).
PARAMS_PER_VALUE = 1.6
MIN_TABLE_PARAMS = 2**16  # 256 KiB of float32: small data still gets a well-sized table
DATA_BUDGET = "data_budget_bytes"  # the stats.json key of `data_budget` (no --budget given)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10,
          "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip
_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$")


def parse_budget(text: str | float) -> int:
    """`"1.5MB"`, `"512KiB"`, `"2e6"` or a number of bytes -> bytes, in [1, MAX_BUDGET_BYTES]
    (NaN, infinities, negative and absurd sizes are refused, naming the value)."""
    match = _BUDGET.match(str(text).lower())
    if not match or match.group(2) not in _UNITS:
        raise SpecError(f"`budget` should be a size like `4MB`, `512KiB` or a byte count. "
                        f"Received: `--budget {text}`")  # fmt: skip
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(value) or value > MAX_BUDGET_BYTES:
        raise SpecError(f"`budget` should be at most {MAX_BUDGET_BYTES} bytes (1 TiB: a "
                        f"served model holds its whole table in one process). Received: "
                        f"`--budget {text}`")  # fmt: skip
    if value < 1:
        raise SpecError(f"`budget` should be at least 1 byte. Received: `--budget {text}`")
    return int(value)


class LayoutParams(dict[str, int | None]):
    """Trainable parameters of each embedding layout (`layouts.LAYOUTS`) for the same fields,
    by name: `params["unified"]`, or `params.unified`. None: unknown (no cardinalities)."""

    def __getattr__(self, name: str) -> int | None:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass(frozen=True)
class BudgetPlan:
    budget_bytes: int
    table: TableSpec
    per_feature_rows: dict[str, int]
    params: LayoutParams

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def numeric_params(spec: FeatureSpec) -> int:
    return 2 * spec.embedding_dim * len(spec.numeric_fields)  # value vector + missing vector


def unified_fixed_params(spec: FeatureSpec) -> int:
    """Unified-layout parameters outside the shared table (numeric, vocabularies, projections)."""
    total = numeric_params(spec)
    for f in spec.categorical_fields:
        if f.vocabulary is not None:
            total += _vocabulary_rows(f.name, f.vocabulary) * spec.embedding_dim
        elif f.probes * spec.table.width != spec.embedding_dim:
            total += f.probes * spec.table.width * spec.embedding_dim
    return total


def unified_params(spec: FeatureSpec) -> int:
    return spec.table.params + unified_fixed_params(spec)


def split_rows_equally(spec: FeatureSpec, params: int) -> dict[str, int]:
    """Rows per categorical field when per-field tables share `params` equally."""
    fields = spec.categorical_fields
    rows = params // (len(fields) * spec.embedding_dim)
    if rows < 1:
        raise SpecError(
            f"`params` is too small for {len(fields)} per-field tables of dim "
            f"{spec.embedding_dim}. Received: `params={params}`"
        )
    return {f.name: rows for f in fields}


def per_feature_params(spec: FeatureSpec, rows_per_field: Mapping[str, int]) -> int:
    return sum(rows_per_field.values()) * spec.embedding_dim + numeric_params(spec)


def collisionless_params(spec: FeatureSpec, cardinalities: Mapping[str, int]) -> int | None:
    """Rows for every distinct value plus missing and out-of-vocabulary; None when unknown."""
    rows = 0
    for f in spec.categorical_fields:
        if f.name in cardinalities:
            rows += cardinalities[f.name] + 2
        elif f.vocabulary is not None:
            rows += _vocabulary_rows(f.name, f.vocabulary)
        else:
            return None
    return rows * spec.embedding_dim + numeric_params(spec)


def plan_budget(
    spec: FeatureSpec,
    budget_bytes: int,
    cardinalities: Mapping[str, int] | None = None,
    bytes_per_param: int = BYTES_PER_PARAM,
) -> BudgetPlan:
    """The shared table (keeping the spec's width and sub-tables) that spends `budget_bytes`."""
    params = budget_bytes // bytes_per_param
    fixed = unified_fixed_params(spec)
    table = spec.table
    rows = (params - fixed) // table.width // table.num_tables * table.num_tables
    if rows < table.num_tables:
        raise SpecError(
            f"`budget` leaves no room for the shared table: {fixed} parameters go to numeric "
            f"fields, vocabularies and projections. Received: `budget_bytes={budget_bytes}`"
        )
    if rows // table.num_tables > MAX_TABLE_ROWS:
        raise SpecError(
            f"`budget` would give the shared table {rows} rows of width {table.width} in "
            f"{table.num_tables} sub-table(s), more than {MAX_TABLE_ROWS} per sub-table (int32 "
            f"row indexes). Received: `budget_bytes={budget_bytes}`"
        )
    # imported here: the registry imports this module's parameter counts
    from unified_embedding.budget.layouts import REGISTRY

    sized = dataclasses.replace(table, rows=rows)
    per_field = split_rows_equally(spec, params - numeric_params(spec))
    plan = BudgetPlan(budget_bytes, sized, per_field, LayoutParams())
    plan.params.update(
        {name: layout.params(spec, plan, cardinalities or {}) for name, layout in REGISTRY.items()}
    )
    return plan


def data_budget(
    spec: FeatureSpec,
    distinct: Mapping[str, int],
    params_per_value: float = PARAMS_PER_VALUE,
    min_table_params: int = MIN_TABLE_PARAMS,
    bytes_per_param: int = BYTES_PER_PARAM,
) -> int:
    """The budget (bytes) when none is given: `params_per_value` shared-table parameters per
    distinct value of the hashed fields (`distinct`: stats.json's `approx_distinct`), at least
    `min_table_params`, plus the parameters outside the table (numeric, vocabularies,
    projections).

    The peers (DeepCTR/FuxiCTR AutoInt, a 16-wide row per distinct value) spend ~16 parameters
    per value; 1.6 is a tenth of that. Measured (`benchmarks/probes.py --study budget`: AutoInt,
    unified table, 2 seeds, trained on 80% of each shared sample's rows and scored on a fixed
    seeded 20% carve-out of them; 3 epochs on Criteo and Avazu, 2 on Frappe), mean AUC
    (table + numeric parameters):

        sample   this rule       1.6/value only  old 2 MiB        a tenth of the peers'
        criteo   0.7124 (66.0k)  0.7109 (60.0k)  0.7128 (524k)    0.7111 (64.6k)
        avazu    0.6746 (65.5k)  0.6726 (15.3k)  0.6741 (524k)    0.6691 (64.6k)
        frappe   0.9214 (65.5k)  0.9028 (8.4k)   0.9245 (524k)    0.8980 (8.5k)

    Criteo and Avazu are flat from 1.6 parameters per value up (within the 0.002-0.009 seed
    spread); Frappe's 5k frequent values lose 0.02 AUC at 1.6/value and recover at 16/value
    (0.9227, 84k), hence the 2^16-parameter floor: ~1/8 of the old default's table for the
    same AUC within 0.003 on all three samples.
    """
    missing = [f.name for f in spec.categorical_fields if f.is_hashed and f.name not in distinct]
    if missing:
        raise SpecError(f"`distinct` has no count for hashed fields {missing}. Received: "
                        f"`distinct` for {sorted(distinct)}")  # fmt: skip
    values = sum(int(distinct[f.name]) for f in spec.categorical_fields if f.is_hashed)
    table = max(round(params_per_value * values), min_table_params)
    return (table + unified_fixed_params(spec)) * bytes_per_param


def default_budget(spec: FeatureSpec, stats: Mapping[str, Any] | None) -> int:
    """The budget of a run given none: stats.json's `data_budget_bytes` (written by `ue
    preprocess` without `--budget`), else the table of the records' spec (a `--budget` given
    to `ue preprocess`, or records written before the key existed)."""
    if stats and DATA_BUDGET in stats:
        return int(stats[DATA_BUDGET])
    return spec.table.params * BYTES_PER_PARAM


def _vocabulary_rows(field: str, values: tuple[str, ...]) -> int:
    # imported here: planning a budget must not load TensorFlow into a Beam launcher process
    from unified_embedding.contract.vocabulary import vocabulary_rows

    return vocabulary_rows(field, values)
