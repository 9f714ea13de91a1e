"""The embedding layouts: one registry entry per layout owns everything that differs by layout.

    layout = get_layout("per_feature")
    layer = layout.build(spec, plan_budget(spec, budget))   # its FieldEmbedding
    layout.params(spec, plan, cardinalities)              # what it spends (None: unknown)
    layout.label                                          # how figures and reports name it

Layouts (Coleman et al., NeurIPS 2023, figure 3's comparison):
  unified        one shared table sized by `budget.plan_budget` (probes concatenated per field)
  per_feature    one hash table per categorical field, the budget split equally
  collisionless  one row per distinct training value: sized by its vocabularies, not by the
                 budget (`spends_budget=False`, `needs_vocabulary=True`)

Adding a layout is one `Layout` entry below plus its layer. This module imports no TensorFlow
(the Beam launcher plans budgets through it): the factories import their layer when called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from unified_embedding.budget.params import (
    BudgetPlan,
    collisionless_params,
    per_feature_params,
    unified_params,
)
from unified_embedding.contract.spec import MAX_TABLE_ROWS, FeatureSpec, SpecError

if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    from unified_embedding.layers.field_embedding import FieldEmbedding

Vocabularies = Mapping[str, Sequence[str]]
Fingerprints = Mapping[str, "Sequence[int] | np.ndarray"]


def _all_embedding_variables(embedding: FieldEmbedding) -> list[tf.Variable]:
    return list(embedding.trainable_variables)


@dataclass(frozen=True)
class Layout:
    """One embedding layout.

    Attributes:
      name: the key (`--embedding`, `run.json`, the study's `layout` column).
      label: how figures and reports name it.
      build: `(spec, plan, vocabularies, fingerprints) -> FieldEmbedding` spending `plan`.
      params: `(spec, plan, cardinalities) -> parameters` of the layer `build` makes; None when
        unknown (a vocabulary layout without cardinalities).
      spends_budget: False when the layer's size is fixed by its vocabularies, not the budget.
      needs_vocabulary: `build` needs `vocabularies` (raw values) or `fingerprints` per field.
      table_variables: the variables trained with sparse Adagrad (only touched rows update);
        every other variable of the model trains with Adam.
      collision_keys: the per-field keys of this layout in the pipeline's `stats.json`
        `collisions` (see `pipelines.stats.collision_rates`).
      style: matplotlib keyword arguments of its line in figures.
    """

    name: str
    label: str
    build: Callable[
        [FeatureSpec, BudgetPlan, Vocabularies | None, Fingerprints | None], FieldEmbedding
    ]
    params: Callable[[FeatureSpec, BudgetPlan, Mapping[str, int]], int | None]
    spends_budget: bool = True
    needs_vocabulary: bool = False
    table_variables: Callable[[FieldEmbedding], list[tf.Variable]] = _all_embedding_variables
    collision_keys: tuple[str, ...] = ()
    style: Mapping[str, Any] = field(default_factory=dict)


def _unified(
    spec: FeatureSpec, plan: BudgetPlan, _v: Vocabularies | None, _f: Fingerprints | None
) -> FieldEmbedding:
    from unified_embedding.layers.unified import UnifiedEmbedding

    return UnifiedEmbedding(spec.replace(table=plan.table))


def _per_feature(
    spec: FeatureSpec, plan: BudgetPlan, _v: Vocabularies | None, _f: Fingerprints | None
) -> FieldEmbedding:
    from unified_embedding.layers.per_feature_hash import PerFeatureHashEmbedding

    rows = max(plan.per_feature_rows.values(), default=0)
    if rows > MAX_TABLE_ROWS:
        raise SpecError(
            f"`budget` would give each per-feature table {rows} rows, more than "
            f"{MAX_TABLE_ROWS} (int32 row indexes). Received: "
            f"`budget_bytes={plan.budget_bytes}`"
        )
    return PerFeatureHashEmbedding(spec, plan.per_feature_rows)


def _collisionless(
    spec: FeatureSpec,
    _plan: BudgetPlan,
    vocabularies: Vocabularies | None,
    fingerprints: Fingerprints | None,
) -> FieldEmbedding:
    from unified_embedding.layers.collisionless import CollisionlessEmbedding

    return CollisionlessEmbedding(spec, vocabularies, fingerprints)


_ENTRIES = (
    Layout(
        name="unified",
        label="unified (one shared table)",
        build=_unified,
        params=lambda spec, plan, _c: unified_params(spec.replace(table=plan.table)),
        collision_keys=(
            "unified_probe_collision_rate",
            "unified_all_probes_collide_rate",
            "unified_collision_rate",
        ),
        style={"color": "tab:blue", "marker": "o"},
    ),
    Layout(
        name="per_feature",
        label="per-feature hashing",
        build=_per_feature,
        params=lambda spec, plan, _c: per_feature_params(spec, plan.per_feature_rows),
        collision_keys=("per_feature_rows", "per_feature_collision_rate"),
        style={"color": "tab:orange", "marker": "s"},
    ),
    Layout(
        name="collisionless",
        label="collision-free",
        build=_collisionless,
        params=lambda spec, _plan, cardinalities: collisionless_params(spec, cardinalities),
        spends_budget=False,
        needs_vocabulary=True,
        style={"color": "tab:green", "marker": "*", "markersize": 12},
    ),
)
REGISTRY: dict[str, Layout] = {layout.name: layout for layout in _ENTRIES}
LAYOUTS: tuple[str, ...] = tuple(REGISTRY)


def get_layout(name: str) -> Layout:
    """The registry entry of `name`; a ValueError naming the choices otherwise."""
    if name not in REGISTRY:
        raise ValueError(f"`layout` should be one of {LAYOUTS}. Received: `layout={name!r}`")
    return REGISTRY[name]
