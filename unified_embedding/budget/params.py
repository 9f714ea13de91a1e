"""What each embedding layout costs in trainable parameters, and the plan a budget makes.

    unified_params(spec)                         # the shared table + what lies outside it
    per_feature_params(spec, rows_per_field)     # per-field hash tables
    collisionless_params(spec, cardinalities)    # one row per distinct value (None: unknown)

`plan.plan_budget` fills a `BudgetPlan` with these counts through `layouts.REGISTRY`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from unified_embedding.contract.spec import FeatureSpec, SpecError, TableSpec

BYTES_PER_PARAM = 4  # float32 tables


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


def _vocabulary_rows(field: str, values: tuple[str, ...]) -> int:
    # imported here: planning a budget must not load TensorFlow into a Beam launcher process
    from unified_embedding.contract.vocabulary import vocabulary_rows

    return vocabulary_rows(field, values)
