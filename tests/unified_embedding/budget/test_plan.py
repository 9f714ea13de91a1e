"""The budget helper: sizes the shared table and reports each layout's parameter count."""

from pathlib import Path

import pytest

from unified_embedding.budget.layouts import get_layout
from unified_embedding.budget.plan import (
    MAX_BUDGET_BYTES,
    MIN_TABLE_PARAMS,
    PARAMS_PER_VALUE,
    data_budget,
    default_budget,
    parse_budget,
    plan_budget,
)
from unified_embedding.contract.schemas import criteo, frappe
from unified_embedding.contract.spec import MAX_TABLE_ROWS, SpecError, TableSpec


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


@pytest.mark.parametrize(
    "text", ["1e30", "2TiB", "9" * 400, "nan", "inf", "-inf", "-1MB", "0.5", "1e-3", "0.0001KB"]
)
def test_parse_budget_refuses_sizes_no_table_can_have(text: str) -> None:
    """1e30 bytes once put 3.1e28 rows in spec.json and then failed inside Keras."""
    with pytest.raises(SpecError, match=rf"^`budget` .*Received: `--budget {text}`$"):
        parse_budget(text)


@pytest.mark.parametrize("command", ["train", "preprocess"])
def test_commands_refuse_an_impossible_budget_in_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ue.cli import main

    (tmp_path / "x.tsv").write_text("0\t1\n")  # the input exists: the budget is what fails
    flags = {
        "train": ["--data", str(tmp_path), "--model-dir", str(tmp_path / "m")],
        "preprocess": [
            "--input",
            str(tmp_path / "x.tsv"),
            "--schema",
            "criteo",
            "--output",
            str(tmp_path / "out"),
        ],
    }
    try:
        code = main([command, *flags[command], "--budget", "1e30"])
    except SystemExit as e:  # argparse's error (ue train checks the flag as it parses)
        code = int(str(e.code))
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert error.startswith(f"ue {command}: error: ") and "Received: `--budget 1e30`" in error
    assert not (tmp_path / "m").exists() and not (tmp_path / "out").exists()


def test_parse_budget_takes_the_largest_budget() -> None:
    assert parse_budget("1TiB") == MAX_BUDGET_BYTES
    assert parse_budget("1") == 1


def test_plan_refuses_more_rows_than_a_sub_table_indexes() -> None:
    spec = frappe()  # width 8: 100 GB is ~3.1e9 rows, beyond int32 row indexes
    with pytest.raises(SpecError, match=rf"more than {MAX_TABLE_ROWS} per sub-table"):
        plan_budget(spec, parse_budget("100GB"))
    split = spec.replace(table=TableSpec(num_tables=2))
    assert plan_budget(split, parse_budget("100GB")).table.rows // 2 <= MAX_TABLE_ROWS
    with pytest.raises(SpecError, match=r"`rows` should be at most 2147483647 per sub-table"):
        TableSpec(rows=2**31)
    narrow = spec.replace(embedding_dim=1, table=TableSpec(num_tables=8))
    big = plan_budget(narrow, parse_budget("500GB"))  # 1.25e10 rows per per-feature table
    with pytest.raises(SpecError, match=r"each per-feature table \d+ rows, more than"):
        get_layout("per_feature").build(narrow, big, None, None)


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


def test_default_budget_keeps_the_table_of_spec_json() -> None:
    # spec.json states the table training uses: its --budget's, or the data budget's
    for spec in (frappe(), criteo()):
        plan = plan_budget(spec, default_budget(spec))
        assert plan.table == spec.table
        assert plan.params.unified == default_budget(spec) // 4
