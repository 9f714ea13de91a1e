"""The ways `ue preprocess` chooses its eval rows (pipelines/split.py), a block at a time: by a
column compared as numbers or as strings (rows without a value train, a cell of the other
kind fails naming it), by input file, or at random as before; and the flags of two splits
together refused in one line, before Beam or TensorFlow is imported."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.options import DEFAULT_EVAL_FRACTION, PreprocessOptions, parse
from pipelines.split import ColumnSplit, FileSplit, RandomSplit, SplitValueError
from unified_embedding.contract.schemas import from_short_form
from unified_embedding.rows.textfile import LineBlock
from unified_embedding.rows.validation import BlockValidator, CheckedBlock

ROOT = Path(__file__).resolve().parents[2]
# `t` is an ignored column (a time), `n` the row's number: the oracle below reads both.
SPEC = from_short_form(
    {
        "columns": ["y", "t", "n", "c"],
        "delimiter": "\t",
        "label": "y",
        "ignore": ["t"],
        "numeric": ["n"],
        "missing": ["null"],
    }
)


def checked(times: list[str], source: str = "day.tsv", line: int = 1) -> CheckedBlock:
    data = b"".join(f"{i % 2}\t{t}\t{i}\tv{i}\n".encode() for i, t in enumerate(times))
    return BlockValidator(SPEC).validate(LineBlock(source, 0, line, data))


def test_numbers_compare_as_numbers_and_rows_without_a_value_train() -> None:
    #  t:  9  10  2  ""  11  null  1e1  10.5  -3
    times = ["9", "10", "2", "", "11", "null", "1e1", "10.5", "-3"]
    assigned = ColumnSplit("t", "10", SPEC.input_format.missing).assign(checked(times))
    # the oracle: float comparison where there is a value; "9" < "10" although "9" > "10" as text
    expected = [t not in ("", "null") and float(t) >= 10 for t in times]
    assert assigned.eval.tolist() == expected
    assert assigned.without_value == 2
    assert ColumnSplit("t", "10").document(2) == {
        "method": "column",
        "time_ordered": True,
        "column": "t",
        "eval_from": "10",
        "compare": "numbers",
        "rows_without_value": 2,
    }


def test_iso_times_compare_as_strings() -> None:
    times = ["2024-01-02T23:59:59", "2024-01-03", "2024-01-03T00:00:00", "2024-01-10", "", "2023"]
    times = times[:-1]  # "2023" is a number: see the mixed test
    split = ColumnSplit("t", "2024-01-03")
    assert not split.numeric and split.document(0)["compare"] == "strings"
    assigned = split.assign(checked(times))
    assert assigned.eval.tolist() == [t != "" and t >= "2024-01-03" for t in times]
    assert assigned.without_value == 1


@pytest.mark.parametrize(
    ("eval_from", "times", "bad", "message"),
    [
        ("10", ["9", "yesterday", "12"], "'yesterday'", ", not a number, but `--eval-from 10` is"),
        ("2024-01-03", ["2024-01-01", "20240105"], "'20240105'", ", a number, but `--eval-from"),
    ],
)
def test_a_cell_of_the_other_kind_fails_naming_file_line_and_value(
    eval_from: str, times: list[str], bad: str, message: str
) -> None:
    block = checked(times, source="logs/day7.tsv", line=41)
    line = 41 + next(i for i, t in enumerate(times) if t in bad)
    with pytest.raises(SplitValueError) as error:
        ColumnSplit("t", eval_from).assign(block)
    text = str(error.value)
    assert f"`--split-by t` holds {bad} at logs/day7.tsv line {line}{message}" in text
    assert "\n" not in text


def test_a_file_split_puts_whole_files_in_eval() -> None:
    split = FileSplit(frozenset({"b.tsv"}), "a*.tsv", "b.tsv", train_files=2)
    assert split.assign(checked(["1", "2"], source="b.tsv")).eval.tolist() == [True, True]
    assert split.assign(checked(["1", "2"], source="a1.tsv")).eval.tolist() == [False, False]
    assert (split.file_split("b.tsv"), split.file_split("a1.tsv")) == ("eval", "train")
    assert split.document(0) == {
        "method": "eval_input",
        "time_ordered": True,
        "input": "a*.tsv",
        "eval_input": "b.tsv",
        "train_files": 2,
        "eval_files": 1,
    }


def test_the_random_split_is_unchanged() -> None:
    from pipelines.encode import eval_rows

    block = checked([str(i) for i in range(2000)])
    first = RandomSplit(0.25).assign(block)
    assert first.eval.tolist() == eval_rows(block, None, 0.25).tolist()
    assert 0.2 < first.eval.mean() < 0.3 and first.without_value == 0
    assert RandomSplit(0.25).file_split("x") is None
    assert RandomSplit(0.25, "c").document(0)["time_ordered"] is False


def options(*flags: str) -> PreprocessOptions:
    argv = ["--input", "in/*.tsv", "--schema", "criteo", "--output", "out", *flags]
    return parse(PreprocessOptions, "ue preprocess", "", argv)[0]


def test_the_flags_choose_the_split() -> None:
    random = options()
    assert random.eval_fraction == DEFAULT_EVAL_FRACTION and not random.time_ordered
    assert random.globs() == {"--input": "in/*.tsv"}
    assert options("--eval-fraction", "0.3").eval_fraction == 0.3
    by_file = options("--eval-input", "next/*.tsv")
    assert by_file.eval_fraction is None and by_file.time_ordered
    assert by_file.globs() == {"--input": "in/*.tsv", "--eval-input": "next/*.tsv"}
    by_column = options("--split-by", "hour", "--eval-from", "14102200")
    assert (by_column.split_by, by_column.eval_from, by_column.eval_fraction) == (
        "hour",
        "14102200",
        None,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--split-by", "t"], "`--split-by` and `--eval-from` go together"),
        (["--split-by", "t"], "Received: `--split-by t` without `--eval-from`"),
        (["--eval-from", "5"], "Received: `--eval-from 5` without `--split-by`"),
        (
            ["--eval-input", "x", "--split-by", "t", "--eval-from", "5"],
            "`--eval-input` and `--split-by` are two ways to choose the eval rows; give one. "
            "Received: `--eval-input x` and `--split-by t`",
        ),
        (
            ["--eval-input", "x", "--eval-fraction", "0.1"],
            "`--eval-fraction` belongs to the random split: with `--eval-input x` the eval rows "
            "are chosen by file. Received: `--eval-fraction 0.1`",
        ),
        (
            ["--split-by", "t", "--eval-from", "5", "--eval-fraction", "0.2"],
            "Received: `--eval-fraction 0.2` and `--split-by t`",
        ),
        (
            ["--split-by", "t", "--eval-from", "5", "--split-key", "id"],
            "`--split-key` belongs to the random split: with `--split-by t` the eval rows are "
            "chosen by column",
        ),
        (["--split-by", "t", "--eval-from", ""], "`--eval-from` should be a value"),
    ],
)
def test_flags_of_two_splits_are_refused(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        options(*flags)


def test_refusals_are_one_line_before_beam_or_tensorflow_loads(tmp_path: Path) -> None:
    rows = tmp_path / "rows.tsv"
    rows.write_text("1\t2\n")
    code = f"""
import sys
from pipelines.preprocess import main

def loaded():
    return sorted(m for m in ("apache_beam", "tensorflow") if m in sys.modules)

base = ["--input", {str(rows)!r}, "--schema", "criteo", "--output", {str(tmp_path / "o")!r}]
for extra in (
    ["--split-by", "C1"],
    ["--eval-input", {str(tmp_path / "none" / "*.tsv")!r}],
    ["--split-by", "hour", "--eval-from", "3"],
    ["--split-by", "label", "--eval-from", "3"],
):
    print(main([*base, *extra]), loaded())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.stdout.split("\n")[:4] == ["2 []"] * 4, out.stderr
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 4 and all(e.startswith("ue preprocess: error: ") for e in errors)
    assert "Received: `--split-by C1` without `--eval-from`" in errors[0]
    assert f"no input file matches `--eval-input {tmp_path}/none/*.tsv`" in errors[1]
    assert "`--split-by` should be a column of the input format other than the label" in errors[2]
    assert "Received: `--split-by hour`" in errors[2] and "'C26'" in errors[2]
    assert "Received: `--split-by label`" in errors[3]
    assert not (tmp_path / "o").exists()


def test_mixed_kinds_are_found_in_any_row_of_a_block() -> None:
    times = [str(i) for i in range(5000)]
    times[4321] = "n/a"
    with pytest.raises(SplitValueError, match=r"'n/a' at day\.tsv line 4322, not a number"):
        ColumnSplit("t", "100").assign(checked(times))
    times[4321] = ""
    assigned = ColumnSplit("t", "100").assign(checked(times))
    assert int(assigned.eval.sum()) == 4900 - 1 and assigned.without_value == 1
    assert np.array_equal(np.flatnonzero(~assigned.eval), np.r_[0:100, 4321])
