"""The budget helper: sizes the shared table and reports each layout's parameter count."""

import pytest

from unified_embedding.budget import (
    MIN_TABLE_PARAMS,
    PARAMS_PER_VALUE,
    data_budget,
    default_budget,
    parse_budget,
    plan_budget,
)
from unified_embedding.schemas import criteo, frappe
from unified_embedding.spec import SpecError, TableSpec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4MB", 4_000_000),
        ("1.5 mb", 1_500_000),
        ("512KiB", 524_288),
        ("2e6", 2_000_000),
        (100, 100),
    ],
)
def test_parse_budget(text: str, expected: int) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["", "4 parsecs", "-1MB", "0"])
def test_parse_budget_names_bad_value(text: str) -> None:
    with pytest.raises(SpecError, match="budget"):
        parse_budget(text)


def test_plan_spends_the_budget() -> None:
    spec = criteo()
    plan = plan_budget(spec, parse_budget("1MB"))
    params = 1_000_000 // 4
    numeric = 13 * 2 * 16
    assert plan.table.rows == (params - numeric) // 8
    assert plan.params.unified <= params < plan.params.unified + 8
    assert plan.params.per_feature <= params
    assert set(plan.per_feature_rows) == {f"C{i}" for i in range(1, 27)}
    assert plan.params.collisionless is None  # cardinalities unknown


def test_plan_keeps_sub_tables_even_and_counts_collisionless() -> None:
    spec = frappe().replace(table=TableSpec(rows=8, width=8, num_tables=4))
    plan = plan_budget(spec, 40_000, cardinalities={f"f{i}": 100 for i in range(10)})
    assert plan.table.rows % 4 == 0 and plan.table.num_tables == 4
    assert plan.params.collisionless == 10 * 102 * 16


def test_plan_rejects_budget_too_small() -> None:
    with pytest.raises(SpecError, match=r"Received: `budget_bytes=100`"):
        plan_budget(criteo(), 100)


def test_data_budget_scales_with_distinct_values() -> None:
    spec = criteo()
    fixed = 13 * 2 * 16  # numeric fields: value and missing vectors
    distinct = {f"C{i}": 10_000 for i in range(1, 27)}
    assert data_budget(spec, distinct) == (round(PARAMS_PER_VALUE * 260_000) + fixed) * 4
    assert data_budget(spec, distinct, params_per_value=16) == (16 * 260_000 + fixed) * 4
    plan = plan_budget(spec, data_budget(spec, distinct))
    assert plan.table.rows == round(PARAMS_PER_VALUE * 260_000) // 8


def test_data_budget_keeps_a_minimum_table() -> None:
    spec = frappe()
    budget = data_budget(spec, {f"f{i}": 2 for i in range(10)})
    assert plan_budget(spec, budget).table.params == MIN_TABLE_PARAMS
    assert data_budget(spec, {f"f{i}": 2 for i in range(10)}, min_table_params=800) == 800 * 4


def test_data_budget_names_fields_without_counts() -> None:
    with pytest.raises(SpecError, match=r"no count for hashed fields \['f9'\]"):
        data_budget(frappe(), {f"f{i}": 5 for i in range(9)})


def test_default_budget_is_the_data_rule_when_preprocess_had_no_budget() -> None:
    spec = frappe()
    assert default_budget(spec, {"data_budget_bytes": 123_456}) == 123_456
    assert default_budget(spec, {"rows_read": 10}) == spec.table.params * 4  # a --budget given
    assert default_budget(spec, None) == spec.table.params * 4
