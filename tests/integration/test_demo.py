"""The `ue` command line: generate and demo end to end, bad input as a clear error."""

import json
from pathlib import Path

import pytest

from ue.cli import main


def test_generate_writes_rows_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rows.tsv"
    assert main(["generate", "--rows", "2000", "--out", str(out), "--seed", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 2000 and 0.5 < report["planted_auc"] < 1.0
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2000 and all(len(line.split(b"\t")) == 40 for line in lines)


def test_bad_input_exits_2_with_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["generate", "--rows", "-5", "--out", str(tmp_path / "x.tsv")])
    assert code == 2
    assert "`rows=-5`" in capsys.readouterr().err


def test_demo_runs_the_whole_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = tmp_path / "new" / "dir"  # created by the demo
    args = [
        "demo",
        "--rows",
        "6000",
        "--no-compare",
        "--budget",
        "200KB",
        "--workdir",
        str(workdir),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    (layout,) = summary["results"]
    result = summary["results"][layout]
    assert layout == "unified" and 0.0 <= result["evaluate"]["auc"] <= 1.0
    assert result["evaluate"]["rows"] == 30_000  # held-out rows, never trained on
    assert result["train"]["embedding_params"] <= summary["budget"]["params"]["unified"] <= 50_000
    assert 0.5 < summary["planted_auc"] < 1.0
    assert (workdir / "prep" / "stats.json").is_file()
    assert (Path(result["export"]) / "saved_model.pb").is_file()
    assert "planted model auc" in out
    assert summary["served"]["rows"] == 2_000 and summary["served"]["max_difference"] <= 1e-5
    assert "scored over gRPC equal the in-process SavedModel" in out
    # a rerun in the same workdir replaces its own outputs and exports the next version
    assert main([*args[:2], "3000", *args[3:]]) == 0
    rerun = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rerun["results"][layout]["train"]["steps"] < result["train"]["steps"]
    assert len(list(Path(result["export"]).parent.iterdir())) == 2
