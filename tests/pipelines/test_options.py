"""The jobs' own flags, built from their config dataclasses: defaults written once, values out
of range refused naming the flag, Beam's flags passed on, and a wrong flag or a missing input
refused before Beam or TensorFlow is imported."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.options import (
    DEFAULT_KEYS,
    SCORE_FORMATS,
    PreprocessOptions,
    ScoreOptions,
    check_local_input,
    parse,
)

ROOT = Path(__file__).resolve().parents[2]


def test_the_flags_parse_into_the_dataclass_and_leave_beams_flags() -> None:
    argv = [
        "--input",
        "in/*.tsv",
        "--schema",
        "criteo",
        "--output",
        "out",
        "--overwrite",
        "--runner=FnApiRunner",
        "--direct_num_workers",
        "2",
        "--budget",
        "4MB",
    ]
    options, beam_args = parse(PreprocessOptions, "ue preprocess", "", argv)
    assert options == PreprocessOptions(
        input="in/*.tsv", schema="criteo", output="out", overwrite=True, budget="4MB"
    )
    assert options.block_rows == 4096 and options.eval_fraction == 0.1 and not options.verbose
    assert beam_args == ["--runner=FnApiRunner", "--direct_num_workers", "2"]
    flags = ["--input", "i", "--output", "o", "--model", "m", "--key-columns", " id, offset ,"]
    score, _ = parse(ScoreOptions, "ue score", "", flags)
    assert score.keys == ("id", "offset") and score.format == "csv"
    assert ScoreOptions(input="i", output="o", model="m").keys == DEFAULT_KEYS


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--block-rows", "0"], "`--block-rows` should be positive. Received: `--block-rows 0`"),
        (["--max-dead-fraction", "1.5"], "`--max-dead-fraction` should be in [0, 1]"),
        (["--op-threads", "-1"], "`--op-threads` should be non-negative"),
        (["--explain-top-k", "-2"], "`--explain-top-k` should be non-negative"),
    ],
)
def test_values_out_of_range_are_refused_naming_the_flag(flags: list[str], message: str) -> None:
    argv = ["--input", "i", "--output", "o", "--model", "m", *flags]
    with pytest.raises(ValueError, match=re.escape(message)):
        parse(ScoreOptions, "ue score", "", argv)


def test_the_score_formats_and_row_keys_are_the_writers() -> None:
    from pipelines.score_output import FORMATS, ROW_KEYS

    assert tuple(FORMATS) == SCORE_FORMATS
    assert set(DEFAULT_KEYS) <= set(ROW_KEYS)


def test_a_local_input_that_cannot_match_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_text("1\n")
    for pattern in (tmp_path / "a.tsv", tmp_path / "*.tsv", tmp_path / "**", "gs://b/none/*"):
        check_local_input(str(pattern))
    check_local_input(str(tmp_path / "nothing-*"))  # the folder exists: Beam's match decides
    for pattern in (tmp_path / "b.tsv", tmp_path / "none" / "*.tsv", tmp_path / "none" / "x*"):
        with pytest.raises(FileNotFoundError, match="no input file matches `--input "):
            check_local_input(str(pattern))


@pytest.mark.parametrize("job", ["preprocess", "score"])
def test_a_wrong_flag_is_refused_before_beam_or_tensorflow_loads(job: str) -> None:
    code = f"""
import sys
from pipelines.{job} import main

def loaded():
    return sorted(m for m in ("apache_beam", "tensorflow") if m in sys.modules)

flags = ["--output", "o", "--model", "m", "--schema", "criteo"]
try:
    main(["--input", "in.tsv", *flags, "--block-rows", "x"])
except SystemExit as e:
    print(e.code, loaded())
print(main(["--input", "missing.tsv", *flags]), loaded())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.stdout.split("\n")[:2] == ["2 []", "2 []"], out.stderr
    assert "invalid int value: 'x'" in out.stderr
    assert f"ue {job}: error: " in out.stderr
