"""Size the shared table from a parameter budget, and count what each layout would cost.

plan = plan_budget(criteo(), parse_budget("1MB"))
plan.table                  # TableSpec(rows=..., width=8): the shared table for the budget
plan.params["unified"]      # == UnifiedEmbedding(spec.replace(table=plan.table)).count_params()
plan.params.per_feature     # per-field hash tables splitting the same budget equally
plan.params.collisionless   # one row per distinct value (needs cardinalities)
data_budget(spec, distinct) # no budget given: `ue preprocess` sizes spec.json's table by it

Each layout's count comes from its entry in `layouts.REGISTRY` (`params.py` counts).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping

from unified_embedding.budget.layouts import REGISTRY
from unified_embedding.budget.params import (
    BYTES_PER_PARAM,
    BudgetPlan,
    LayoutParams,
    numeric_params,
    split_rows_equally,
    unified_fixed_params,
    unified_params,
)
from unified_embedding.contract.spec import MAX_TABLE_ROWS, FeatureSpec, SpecError

# The largest `--budget`: 1 TiB. An exported model carries its whole table, and a server (or
# `ue score`) loads it into one process's memory: a larger budget is a slip of units, not a
# plan. Tables are also bounded by rows (`spec.MAX_TABLE_ROWS` per sub-table): `plan_budget`.
MAX_BUDGET_BYTES = 2**40
# The shared table's parameters per distinct value when no budget is given (see `data_budget`).
PARAMS_PER_VALUE = 1.6
MIN_TABLE_PARAMS = 2**16  # 256 KiB of float32: small data still gets a well-sized table
DATA_BUDGET = "data_budget_bytes"  # stats.json: the `data_budget` spec.json's table spends
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$")


def parse_budget(text: str | float) -> int:
    """`"1.5MB"`, `"512KiB"`, `"2e6"` or a number of bytes -> bytes, in [1, MAX_BUDGET_BYTES]
    (NaN, infinities, negative and absurd sizes are refused, naming the value)."""
    match = _BUDGET.match(str(text).lower())
    if not match or match.group(2) not in _UNITS:
        raise SpecError(
            f"`budget` should be a size like `4MB`, `512KiB` or a byte count. "
            f"Received: `--budget {text}`"
        )
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(value) or value > MAX_BUDGET_BYTES:
        raise SpecError(
            f"`budget` should be at most {MAX_BUDGET_BYTES} bytes (1 TiB: a "
            f"served model holds its whole table in one process). Received: "
            f"`--budget {text}`"
        )
    if value < 1:
        raise SpecError(f"`budget` should be at least 1 byte. Received: `--budget {text}`")
    return int(value)


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
        raise SpecError(
            f"`distinct` has no count for hashed fields {missing}. Received: "
            f"`distinct` for {sorted(distinct)}"
        )
    values = sum(int(distinct[f.name]) for f in spec.categorical_fields if f.is_hashed)
    table = max(round(params_per_value * values), min_table_params)
    return (table + unified_fixed_params(spec)) * bytes_per_param


def default_budget(spec: FeatureSpec) -> int:
    """The budget of a run given none: the one that keeps `spec`'s table, the table `ue
    preprocess` wrote in spec.json (its `--budget`'s, or `data_budget`'s of the distinct
    counts): the table's parameters plus those outside it for `spec`'s probes, so
    `plan_budget(spec, default_budget(spec)).table == spec.table`."""
    return unified_params(spec) * BYTES_PER_PARAM
