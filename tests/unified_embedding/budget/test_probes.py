"""Probes per hashed field: fixed counts and multi-size `auto` from distinct counts."""

import json
from pathlib import Path

import pytest

from unified_embedding.budget.plan import data_budget, plan_budget
from unified_embedding.budget.probes import (
    auto_probes,
    distinct_counts,
    parse_probes,
    read_stats,
    with_probes,
)
from unified_embedding.contract.schemas import criteo, frappe
from unified_embedding.contract.spec import FieldSpec, SpecError


@pytest.mark.parametrize(
    ("distinct", "expected"),
    [
        (0, 1),
        (1, 1),
        (3, 1),
        (100, 1),
        (101, 2),
        (1_000, 2),
        (1_001, 3),
        (10_000, 3),
        (10_001, 4),
        (10**9, 4),
    ],
)
def test_auto_probes_grow_with_the_decades_of_distinct_values(distinct: int, expected: int) -> None:
    assert auto_probes(distinct) == expected


def test_auto_probes_stop_at_the_cap() -> None:
    assert auto_probes(10**6, max_probes=2) == 2 and auto_probes(5, max_probes=2) == 1


def test_with_probes_auto_per_field_and_capped_by_the_records() -> None:
    spec = frappe()
    distinct = {f"f{i}": 10 ** (i % 6) for i in range(10)}  # 1 .. 100,000
    recorded = with_probes(spec, 4)
    auto = with_probes(recorded, "auto", distinct, recorded=recorded)
    assert [f.probes for f in auto.fields] == [1, 1, 1, 2, 3, 4, 1, 1, 1, 2]
    capped = with_probes(spec, "auto", distinct, recorded=spec)  # 2 probes recorded
    assert [f.probes for f in capped.fields] == [1, 1, 1, 2, 2, 2, 1, 1, 1, 2]


def test_with_probes_keeps_numeric_and_vocabulary_fields() -> None:
    spec = criteo()
    fields = (*spec.fields[:-1], FieldSpec("C26", vocabulary=("a", "b")))
    spec = spec.replace(fields=fields)
    out = with_probes(spec, 3)
    assert out.field("C1").probes == 3 and out.field("C26").probes == 2
    assert out.field("I1") == spec.field("I1")
    assert with_probes(spec, None) is spec


def test_with_probes_refuses_more_than_recorded_naming_the_field() -> None:
    spec = frappe()
    with pytest.raises(SpecError, match=r"2 probes recorded for field `f0`.*probes=3"):
        with_probes(spec, 3, recorded=spec)


def test_auto_needs_the_distinct_counts() -> None:
    with pytest.raises(SpecError, match=r"distinct count of field `f0`"):
        with_probes(frappe(), "auto", None)


@pytest.mark.parametrize("text", ["0", "65", "many", "2.5"])
def test_parse_probes_names_bad_values(text: str) -> None:
    with pytest.raises(SpecError, match=rf"Received: `probes='{text}'`"):
        parse_probes(text)


def test_parse_probes() -> None:
    assert parse_probes("auto") == "auto" and parse_probes("3") == 3 and parse_probes(None) is None


def test_distinct_counts_from_stats_json(tmp_path: Path) -> None:
    assert read_stats(tmp_path) is None and distinct_counts(None) is None
    stats = {"fields": {"I1": {"kind": "numeric"}, "C1": {"approx_distinct": 42}}}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    assert distinct_counts(read_stats(tmp_path)) == {"C1": 42}


def test_auto_probes_spend_the_same_budget() -> None:
    spec = criteo()
    distinct = {f"C{i}": 10 ** (1 + i % 4) for i in range(1, 27)}
    budget = data_budget(spec, distinct)
    fixed = plan_budget(spec, budget)
    auto = plan_budget(with_probes(with_probes(spec, 4), "auto", distinct), budget)
    assert auto.table.rows < fixed.table.rows  # projections are paid from the same budget
    assert fixed.params.unified <= budget // 4 and auto.params.unified <= budget // 4
    assert budget // 4 - auto.params.unified < 8  # ... and all of it is spent


def test_preprocess_probes_flag_sets_every_hashed_field() -> None:
    from pipelines.preprocess import load_spec, parse_args

    args, _ = parse_args(["--input", "x", "--schema", "frappe", "--output", "o", "--probes", "3"])
    assert {f.probes for f in load_spec(args).fields} == {3}
    args, _ = parse_args(["--input", "x", "--schema", "frappe", "--output", "o"])
    assert load_spec(args) == frappe()
