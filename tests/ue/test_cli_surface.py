"""The `ue` surface a newcomer meets: help with defaults, budgets with units, the schema taken
from the model, one-line errors, the preprocess summary."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.preprocess import load_spec
from pipelines.preprocess import parse_args as preprocess_args
from protos import prediction_pb2
from serving.client import columns_from_file
from ue.cli import build_parser, main
from unified_embedding.budget.plan import plan_budget
from unified_embedding.contract.schemas import criteo, frappe
from unified_embedding.rows.reader import read_rows
from unified_embedding.synthetic import SyntheticConfig, generate


def _commands() -> dict[str, argparse.ArgumentParser]:
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_every_flag_has_help_and_help_shows_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, parser in _commands().items():
        if name in ("preprocess", "score"):  # Beam jobs own their flags: below
            continue
        undocumented = [a.dest for a in parser._actions if not a.help]
        assert undocumented == [], name
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 10000)" in text and "(default: unified)" in text
    assert "--data DATA the output directory of ue preprocess --model-dir" in text  # no default
    for job in ("preprocess", "score"):
        with pytest.raises(SystemExit):
            main([job, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: 4096)" in text, job
        assert "--input INPUT file glob (CSV/TSV; .gz, .bz2, .xz ok) --" in text, job  # required
        assert "(default: the" not in text, job  # no default given twice


@pytest.mark.parametrize(("text", "size"), [("200KB", 200_000), ("4MB", 4 * 10**6),
                                            ("1MiB", 2**20)])  # fmt: skip
def test_budget_takes_units_on_preprocess_and_train(text: str, size: int) -> None:
    args, _ = preprocess_args(["--input", "x", "--schema", "criteo", "--output", "o",
                               "--budget", text])  # fmt: skip
    assert load_spec(args).table == plan_budget(criteo(), size).table
    train = build_parser().parse_args(
        ["train", "--data", "d", "--model-dir", "m", "--budget", text]
    )
    assert train.budget == text


def test_budget_mb_is_a_deprecated_alias(capsys: pytest.CaptureFixture[str]) -> None:
    from ue.cli import _train_budget

    args = build_parser().parse_args(["train", "--data", "d", "--model-dir", "m",
                                      "--budget-mb", "0.2"])  # fmt: skip
    assert _train_budget(args) == "0.2MB"
    assert "`--budget-mb` is deprecated; use `--budget 0.2MB`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--data", "d", "--model-dir", "m", "--budget", "4XB"])
    assert "`budget` should be a size like `4MB`" in capsys.readouterr().err
    both = ["train", "--data", "d", "--model-dir", "m", "--budget", "1MB", "--budget-mb", "1"]
    assert main(both) == 2
    assert "not both" in capsys.readouterr().err


def test_export_without_a_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    for model_dir in (tmp_path / "empty", tmp_path / "missing"):
        assert main(["export", "--model-dir", str(model_dir), "--export-base",
                     str(tmp_path / "e")]) == 2  # fmt: skip
        (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
        assert line == (f"ue export: error: no trained run in `--model-dir {model_dir}` "
                        f"(run.json is missing): train one with `ue train`")  # fmt: skip
    assert not (tmp_path / "e").exists()


@pytest.fixture(scope="module")
def prep_without_eval(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """ue preprocess with --eval-fraction 0 (and one bad row); its stderr summary."""
    tmp = tmp_path_factory.mktemp("noeval")
    rows = tmp / "rows.tsv"
    rows.write_bytes(generate(300, SyntheticConfig(seed=1)).to_tsv_bytes() + b"x\ty\n")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["preprocess", "--input", str(rows), "--schema", "criteo", "--output",
                     str(tmp / "prep"), "--eval-fraction", "0", "--max-dead-fraction",
                     "0.5"]) == 0  # fmt: skip
    return tmp / "prep", err.getvalue()


def test_preprocess_ends_with_a_summary(prep_without_eval: tuple[Path, str]) -> None:
    prep, err = prep_without_eval
    lines = [line.split() for line in err.splitlines()]
    assert ["rows", "read", "301"] in lines and ["valid", "300"] in lines
    assert ["dead", "1", "(0.3%)"] in lines and ["wrong_column_count", "1"] in lines
    assert ["train", "split", "300"] in lines and ["eval", "split", "0"] in lines
    assert ["dead", "letters:", f"{prep}/dead_letters-*.jsonl"] in lines
    assert len(list(prep.glob("dead_letters-*.jsonl"))) == 1


def test_train_on_an_empty_split_is_one_line(
    prep_without_eval: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prep, _ = prep_without_eval
    code = main(["train", "--data", str(prep), "--model-dir", str(tmp_path / "m"),
                 "--steps", "2"])  # fmt: skip
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("ue train: error: the `eval` split has no rows")
    assert line.endswith(f"Received: `data={prep}`")
    assert not (tmp_path / "m" / "run.json").exists()


def test_evaluate_takes_the_schema_from_the_model(  # type: ignore[no-untyped-def]
    exported_model, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", "--model", str(exported_model.version), "--input",
            str(exported_model.rows_file)]  # fmt: skip
    assert main(args) == 0
    from_model = json.loads(capsys.readouterr().out)
    assert main([*args, "--schema", "criteo"]) == 0
    assert from_model == json.loads(capsys.readouterr().out) and from_model["rows"] == 200


def test_predict_reads_files_in_the_served_models_format(tmp_path: Path) -> None:
    """No --schema: the spec in GetModelInfo says how to read the file (here frappe's, where
    the old default, criteo, would fail)."""
    spec = frappe()
    rows = tmp_path / "rows.csv"
    columns = spec.input_format.columns
    lines = [",".join(columns)] + [",".join("1" if c == "label" else f"{c}v{i}" for c in columns)
                                   for i in range(3)]  # fmt: skip
    rows.write_text("\n".join(lines) + "\n")
    info = prediction_pb2.ModelInfo(
        fields=[prediction_pb2.Field(name=f.name, kind=f.kind) for f in spec.fields],
        spec_json=spec.to_json(),
    )
    got = columns_from_file(rows, None, info)
    expected = read_rows(spec, rows).columns
    assert tuple(got) == spec.field_names
    for f in spec.fields:
        if f.kind != "numeric":
            np.testing.assert_array_equal(got[f.name], expected[f.name].astype(str))
    with pytest.raises(ValueError, match="give `--schema`"):
        columns_from_file(rows, None, prediction_pb2.ModelInfo(fields=info.fields))


def test_served_model_info_carries_its_spec(running_server, exported_model) -> None:  # type: ignore[no-untyped-def]
    from serving.client import RankingClient

    with RankingClient(running_server.target) as client:
        info = client.model_info()
    assert info.spec_json == exported_model.spec.to_json()


def test_cpu_only_start_up_noise_is_recognised_and_nothing_else() -> None:
    from unified_embedding.runtime.startup import CPU_ONLY_NOISE

    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1.2 5463 port.cc:153] oneDNN custom operations are on. You may see ...",
        "I0000 00:00:1.2 5463 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
        "GPU will not be used.",
        "E0000 00:00:1.2 5463 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
        "Failed call to cuInit: UNKNOWN ERROR (303)",
    ]
    assert all(CPU_ONLY_NOISE.search(line) for line in noise)
    kept = ["E0000 00:00:1.2 5463 op_kernel.cc:1] OUT_OF_RANGE: End of sequence",
            "W0000 00:00:1.2 5463 cpu_allocator.cc:1] Allocation exceeds 10% of memory",
            "ue export: error: no trained run"]  # fmt: skip
    assert not any(CPU_ONLY_NOISE.search(line) for line in kept)


@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="a GPU machine logs its GPUs")
def test_a_cpu_only_machine_sees_only_the_error(tmp_path: Path) -> None:
    """A fresh `ue` process: no absl/oneDNN/cuInit lines before the one-line error."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [sys.executable, "-m", "ue.cli", "export", "--model-dir",
         str(tmp_path / "none"), "--export-base", str(tmp_path / "e")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"ue export: error: no trained run in `--model-dir {tmp_path / 'none'}` (run.json is "
        f"missing): train one with `ue train`"
    ]


def test_export_logs_no_keras_config_notes(  # type: ignore[no-untyped-def]
    exported_model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from unified_embedding.exported.writer import export

    logger = logging.getLogger("tensorflow")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="tensorflow"):
            export(exported_model.model, exported_model.spec, tmp_path)
    finally:
        logger.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records if r.name == "tensorflow"] == []


def test_beam_imports_without_its_bigquery_note() -> None:
    import subprocess
    import sys

    code = ("import logging; logging.basicConfig(); "
            "from unified_embedding.runtime.startup import import_beam_quietly; "
            "import_beam_quietly(); "
            "logging.warning('kept')")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)  # fmt: skip
    assert "apitools" not in out.stderr and "WARNING:root:kept" in out.stderr
