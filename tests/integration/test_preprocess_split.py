"""Time-ordered eval splits end to end on temp files: `--eval-input` (every row of its files in
eval, every row of `--input` in train) and `--split-by COLUMN --eval-from VALUE` (rows at or
after VALUE in eval), checked row by row in the written records, with stats.json accounting
for every file of both globs and saying how the split was made; and the refusals."""

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from pipelines.jobs import EmptyInputError
from pipelines.preprocess import run, summary
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.records import read_blocks

# CSV with a header: files may order their columns as they like and hold more (read by name).
# `n` is each row's number (a numeric field: read back from the records), `ts` a time.
CSV_SCHEMA = {
    "name": "clicks",
    "columns": ["id", "ts", "clicked", "n", "city"],
    "label": "clicked",
    "ignore": ["id", "ts"],
    "numeric": ["n"],
    "delimiter": ",",
    "header": True,
}
# TSV without a header: `day` is an ignored column holding day numbers 1..12.
TSV_SCHEMA = {
    "name": "days",
    "columns": ["label", "day", "n", "c"],
    "label": "label",
    "ignore": ["day"],
    "numeric": ["n"],
    "delimiter": "\t",
    "header": False,
}


def schema_file(tmp: Path, schema: dict) -> str:
    path = tmp / f"{schema['name']}.json"
    path.write_text(json.dumps(schema))
    return str(path)


def csv_file(
    path: Path, header: list[str], rows: list[dict], extra_lines: Sequence[str] = ()
) -> None:
    lines = [",".join(header), *(",".join(str(r.get(c, "x")) for c in header) for r in rows)]
    path.write_text("\n".join([*lines, *extra_lines]) + "\n")


def split_rows(output: Path, split: str) -> list[tuple[int, float]]:
    """(n, label) of every row of a split's records, sorted."""
    if not list(output.glob(f"{split}-*.tfrecord.gz")):
        return []
    spec = FeatureSpec.load(output / "spec.json")
    found = []
    for batch in read_blocks(spec, str(output / f"{split}-*.tfrecord.gz")).batch(10_000):
        numbers = batch["n"].numpy().ravel().round().astype(int).tolist()
        found += list(zip(numbers, batch["label"].numpy().ravel().tolist(), strict=True))
    return sorted(found)


def clicks(rows: list[dict]) -> list[dict]:
    """The rows with a label: every third row clicked."""
    return [{"clicked": int(r["n"] % 3 == 0), **r} for r in rows]


def test_eval_input_puts_every_row_of_its_files_in_eval(tmp_path: Path) -> None:
    data = tmp_path / "logs"
    data.mkdir()
    day1a = clicks([{"id": i, "ts": f"2024-01-01T{i % 24:02}", "n": i} for i in range(0, 300)])
    day1b = clicks([{"id": i, "ts": "2024-01-01T23", "n": i} for i in range(300, 450)])
    day2 = clicks([{"id": i, "ts": f"2024-01-02T{i % 24:02}", "n": i} for i in range(1000, 1200)])
    # other column orders, an extra column, a dead row in each glob
    csv_file(data / "day1a.csv", ["id", "ts", "clicked", "n", "city"], day1a, ["1,t,7,5,x"])
    csv_file(data / "day1b.csv", ["city", "n", "clicked", "ts", "id"], day1b)
    csv_file(data / "day2.csv", ["n", "id", "extra", "city", "ts", "clicked"], day2, ["1,2"])
    output = tmp_path / "out"
    stats = run(
        [
            "--input",
            str(data / "day1*.csv"),
            "--eval-input",
            str(data / "day2.csv"),
            "--schema",
            schema_file(tmp_path, CSV_SCHEMA),
            "--output",
            str(output),
            "--block-rows",
            "64",
        ]
    )
    expected = {
        split: sorted((r["n"], float(r["clicked"])) for r in rows)
        for split, rows in (("train", day1a + day1b), ("eval", day2))
    }
    assert split_rows(output, "train") == expected["train"]
    assert split_rows(output, "eval") == expected["eval"]
    assert stats["rows_by_split"] == {"train": 450, "eval": 200}
    assert stats["positives_by_split"] == {
        s: sum(label for _, label in rows) for s, rows in expected.items()
    }
    assert stats["rows_read"] == 652 and stats["rows_dead"] == 2
    assert (
        stats["dead_by_reason"]["bad_label"] == stats["dead_by_reason"]["wrong_column_count"] == 1
    )
    assert stats["files"] == {
        str(data / "day1a.csv"): {
            "rows_read": 301,
            "rows_valid": 300,
            "rows_dead": 1,
            "split": "train",
        },
        str(data / "day1b.csv"): {
            "rows_read": 150,
            "rows_valid": 150,
            "rows_dead": 0,
            "split": "train",
        },
        str(data / "day2.csv"): {
            "rows_read": 201,
            "rows_valid": 200,
            "rows_dead": 1,
            "extra_columns": ["extra"],
            "split": "eval",
        },
    }
    assert stats["split"] == {
        "method": "eval_input",
        "time_ordered": True,
        "input": str(data / "day1*.csv"),
        "eval_input": str(data / "day2.csv"),
        "train_files": 2,
        "eval_files": 1,
    }
    letters = [
        json.loads(line)
        for f in output.glob("dead_letters-*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert sorted(Path(d["source"]).name for d in letters) == ["day1a.csv", "day2.csv"]
    assert "split: eval rows from `--eval-input" in summary(stats, str(output))


def test_split_by_day_numbers_compares_numbers_in_a_headerless_tsv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    days = rng.integers(1, 13, size=600).astype(str).astype(object)
    days[rng.choice(600, size=7, replace=False)] = ""  # no time: trained, counted
    labels = rng.integers(0, 2, size=600)
    lines = [f"{y}\t{d}\t{i}\tc{i % 17}" for i, (y, d) in enumerate(zip(labels, days, strict=True))]
    (tmp_path / "a.tsv").write_text("\n".join(lines[:350]) + "\n")
    (tmp_path / "b.tsv").write_text("\n".join(lines[350:]) + "\n")
    output = tmp_path / "out"
    argv = ["--input", str(tmp_path / "*.tsv"), "--schema", schema_file(tmp_path, TSV_SCHEMA)]
    stats = run([*argv, "--output", str(output), "--split-by", "day", "--eval-from", "10"])
    later = np.array([d != "" and int(d) >= 10 for d in days])  # "9" < "10": as numbers
    rows = [(i, float(labels[i])) for i in range(600)]
    assert split_rows(output, "eval") == [r for r, e in zip(rows, later, strict=True) if e]
    assert split_rows(output, "train") == [r for r, e in zip(rows, later, strict=True) if not e]
    assert stats["rows_by_split"] == {"train": int((~later).sum()), "eval": int(later.sum())}
    assert stats["split"] == {
        "method": "column",
        "time_ordered": True,
        "column": "day",
        "eval_from": "10",
        "compare": "numbers",
        "rows_without_value": 7,
    }
    assert {f: v["rows_read"] for f, v in stats["files"].items()} == {
        str(tmp_path / "a.tsv"): 350,
        str(tmp_path / "b.tsv"): 250,
    }
    assert "split: eval rows have day >= 10 (compared as numbers); 7 rows without a value" in (
        summary(stats, str(output))
    )


def test_split_by_iso_time_compares_strings_in_a_csv(tmp_path: Path) -> None:
    rows = clicks(
        [{"id": i, "ts": f"2024-01-{1 + i % 5:02}T{i % 24:02}:00", "n": i} for i in range(240)]
    )
    csv_file(tmp_path / "log.csv", ["clicked", "n", "ts", "city", "id"], rows)
    output = tmp_path / "out"
    stats = run(
        [
            "--input",
            str(tmp_path / "log.csv"),
            "--schema",
            schema_file(tmp_path, CSV_SCHEMA),
            "--output",
            str(output),
            "--split-by",
            "ts",
            "--eval-from",
            "2024-01-04",
        ]
    )
    later = [r for r in rows if r["ts"] >= "2024-01-04"]
    assert split_rows(output, "eval") == sorted((r["n"], float(r["clicked"])) for r in later)
    assert len(later) == 96 and stats["rows_by_split"] == {"train": 144, "eval": 96}
    assert stats["split"]["compare"] == "strings" and stats["split"]["rows_without_value"] == 0


def test_a_number_among_strings_fails_the_job_naming_the_cell(tmp_path: Path) -> None:
    lines = ["1\t2024-01-01\t1\ta", "0\t2024-01-05\t2\tb", "1\t1704067200\t3\tc"]
    (tmp_path / "mixed.tsv").write_text("\n".join(lines) + "\n")
    argv = ["--input", str(tmp_path / "mixed.tsv"), "--schema", schema_file(tmp_path, TSV_SCHEMA)]
    with pytest.raises(Exception, match=r"holds '1704067200' at .*mixed\.tsv line 3, a number"):
        run(
            [
                *argv,
                "--output",
                str(tmp_path / "out"),
                "--split-by",
                "day",
                "--eval-from",
                "2024-01-03",
            ]
        )
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_eval_input_refusals(tmp_path: Path) -> None:
    lines = "\n".join(f"{i % 2}\t1\t{i}\tc" for i in range(20)) + "\n"
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "next").mkdir()
    for name in ("data/day1.tsv", "data/day2.tsv", "data/day10.tsv", "next/day2.tsv"):
        (tmp_path / name).write_text(lines)
    (data / "empty.tsv").write_text("")
    os.symlink(data / "day1.tsv", tmp_path / "again.tsv")
    schema = schema_file(tmp_path, TSV_SCHEMA)

    def preprocess(train: str, evaluate: str, output: str = "out") -> dict:
        return run(
            [
                *("--input", train, "--eval-input", evaluate),
                *("--schema", schema, "--output", str(tmp_path / output)),
            ]
        )

    with pytest.raises(
        ValueError, match=r"`--input .*day1\*` and `--eval-input .*day10\.tsv` could"
    ):
        preprocess(str(data / "day1*"), str(data / "day10.tsv"))
    with pytest.raises(ValueError, match=r"both match `.*day1\.tsv` \(through a link\)"):
        preprocess(str(data / "day1.tsv"), str(tmp_path / "again.tsv"))
    with pytest.raises(FileNotFoundError, match=r"no input file matches `--eval-input .*day3\*`"):
        preprocess(str(data / "day1.tsv"), str(data / "day3*"))
    with pytest.raises(ValueError, match=r"`--eval-input .*/\*\*` would match the job's own"):
        preprocess(str(data / "day1.tsv"), str(tmp_path / "next" / "**"), "next/out")
    with pytest.raises(EmptyInputError, match=r"read 0 rows from the 1 files `--eval-input "):
        preprocess(str(data / "day1.tsv"), str(data / "empty.tsv"))
    assert preprocess(str(data / "day1.tsv"), str(data / "day2.tsv"), "ok")["rows_by_split"] == {
        "train": 20,
        "eval": 20,
    }
