"""The `ue` surface a newcomer meets: one command line over each subsystem's `main`, flags whose
defaults are their config's (shown by --help, parsed back into the same config), budgets with
units, the schema taken from the model, one-line errors, the preprocess summary."""

import argparse
import contextlib
import dataclasses
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pipelines.preprocess import load_spec
from pipelines.preprocess import parse_args as preprocess_args
from protos import prediction_pb2
from serving import cli as serving_cli
from serving.client import ClientConfig, columns_from_file
from serving.config import BatchingConfig, ManagerConfig, ServerConfig
from serving.workers import WorkersConfig
from ue import demo
from ue.cli import COMMANDS, main
from unified_embedding.budget.layouts import LAYOUTS
from unified_embedding.budget.plan import plan_budget
from unified_embedding.contract.schemas import criteo, frappe
from unified_embedding.evaluation import cli as evaluation_cli
from unified_embedding.evaluation import push_cli
from unified_embedding.models.config import DEFAULT_TRAIN_MODEL
from unified_embedding.rows.reader import read_rows
from unified_embedding.runtime.flags import flag_fields, from_flags, with_flags
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.synthetic import cli as synthetic_cli
from unified_embedding.training import cli as training_cli
from unified_embedding.training import export_cli
from unified_embedding.training.job import TrainJob

PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "generate": synthetic_cli.build_parser,
    "train": training_cli.build_parser,
    "export": export_cli.build_parser,
    "evaluate": evaluation_cli.build_parser,
    "serve": serving_cli.build_serve_parser,
    "predict": serving_cli.build_predict_parser,
    "push": push_cli.build_parser,
    "demo": demo.build_parser,
}


def _help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(out.getvalue().split())


def test_ue_lists_every_command_and_each_main_exists(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help()
    for name, command in COMMANDS.items():
        assert f"{name} {command.summary}" in text
    with pytest.raises(SystemExit) as exited:
        main(["nonsense"])
    assert exited.value.code == 2
    assert "invalid choice: 'nonsense'" in capsys.readouterr().err


def test_every_flag_has_help_and_help_shows_defaults() -> None:
    for name, build in PARSERS.items():
        undocumented = [a.dest for a in build()._actions if not a.help]
        assert undocumented == [], name
    text = _help("train")
    assert "(default: 10000)" in text and "(default: unified)" in text
    assert "--data DATA the output directory of ue preprocess --model-dir" in text  # no default


def test_ue_train_help_shows_trainjobs_defaults() -> None:
    """Every `ue train` flag is a TrainJob field (or its model's, its optimiser's), and --help
    shows the value `TrainJob()` has."""
    text = _help("train")
    job = TrainJob("d", "m")
    for field in flag_fields(TrainJob):
        default = getattr(job, field.name)
        if field.name not in ("data_dir", "model_dir"):
            shown = list(default) if isinstance(default, tuple) else default
            assert f"(default: {shown})" in text, field.name
    assert f"(default: {list(job.model.dnn_units)})" in text
    assert f"--seed SEED initializers and shuffling (default: {job.optimizer.seed})" in text


def test_ue_train_trains_what_trainjob_trains() -> None:
    parser = training_cli.build_parser()
    job = training_cli.job_from(parser.parse_args(["--data", "d", "--model-dir", "m"]))
    assert job == TrainJob("d", "m") and job.model == DEFAULT_TRAIN_MODEL
    # `--dnn-units` with no value: plain AutoInt, without the DNN's dropout
    plain = training_cli.job_from(
        parser.parse_args(["--data", "d", "--model-dir", "m", "--dnn-units"])
    )
    assert plain.model == dataclasses.replace(DEFAULT_TRAIN_MODEL, dnn_units=(), dropout=0.0)
    argv = [
        "--data",
        "d",
        "--model-dir",
        "m",
        "--embedding",
        "per_feature",
        "--seed",
        "3",
        "--dnn-units",
        "64",
        "--steps",
        "7",
        "--overwrite",
        "--table-learning-rate",
        "0.3",
    ]
    job = training_cli.job_from(parser.parse_args(argv))
    assert (job.layout, job.optimizer.seed, job.model.dnn_units) == ("per_feature", 3, (64,))
    assert (job.optimizer.table_learning_rate, job.optimizer.learning_rate) == (0.3, 5e-3)
    assert (job.steps, job.overwrite, job.model.dropout) == (7, True, DEFAULT_TRAIN_MODEL.dropout)
    embedding = next(a for a in parser._actions if a.dest == "layout")
    assert embedding.option_strings == ["--embedding"] and tuple(embedding.choices) == LAYOUTS


def test_every_other_command_parses_to_its_configs_defaults() -> None:
    """No command restates a default: parsed without flags, each builds its config's own."""
    serve = serving_cli.build_serve_parser().parse_args(["--model-base-path", "e"])
    assert serving_cli.server_config(serve) == ServerConfig(ManagerConfig(Path("e")))
    spares = {f.name: getattr(serve, f.name) for f in flag_fields(WorkersConfig)}
    assert WorkersConfig(2, **spares) == WorkersConfig(2)
    predict = serving_cli.build_predict_parser().parse_args(["--target", "t", "--input", "x"])
    assert from_flags(ClientConfig, predict) == ClientConfig()
    generate_args = synthetic_cli.build_parser().parse_args(["--rows", "1", "--out", "x"])
    assert from_flags(SyntheticConfig, generate_args) == SyntheticConfig()
    demo_args = demo.build_parser().parse_args([])
    synthetic = with_flags(demo.DemoConfig.synthetic, demo_args)
    assert from_flags(demo.DemoConfig, demo_args, synthetic=synthetic) == demo.DemoConfig()


def test_ue_serve_takes_tf_servings_spellings_and_one_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = serving_cli.build_serve_parser()
    args = parser.parse_args(
        [
            "--model_config_file",
            "m.config",
            "--model_config_file_poll_wait_seconds",
            "5",
            "--model_name",
            "m",
            "--rest_api_port",
            "0",
            "--rest_api_timeout_in_ms",
            "250",
            "--batching_parameters_file",
            "b.txt",
        ]
    )
    assert (args.config_file, args.config_poll_seconds, args.base_path) == (
        Path("m.config"),
        5,
        None,
    )
    assert (args.model_name, args.rest_api_port, args.rest_api_timeout_in_ms) == ("m", 0, 250)
    assert args.batching_parameters_file == Path("b.txt")
    for wrong in ([], ["--model-base-path", "e", "--model-config-file", "m"]):
        with pytest.raises(SystemExit):
            parser.parse_args(wrong)
        assert "--model-config-file" in capsys.readouterr().err
    # one name per batching knob: the flag, the config field, TF Serving's num_batch_threads
    args = parser.parse_args(["--model-base-path", "e", "--batch-threads", "3", "--no-batching"])
    config = serving_cli.server_config(args)
    assert config.batching == BatchingConfig(enabled=False, batch_threads=3)
    assert "--model-threads" not in parser.format_help()


def test_a_batching_parameters_file_overrides_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 64 }\nnum_batch_threads { value: 3 }\n")
    args = serving_cli.build_serve_parser().parse_args(
        [
            "--model-base-path",
            "e",
            "--max-batch-size",
            "8",
            "--max-wait-us",
            "5",
            "--batching-parameters-file",
            str(path),
        ]
    )
    batching = serving_cli.server_config(args).batching
    assert batching == BatchingConfig(max_batch_size=64, max_wait_us=5, batch_threads=3)


def test_ue_serve_refuses_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    bad = tmp_path / "batching.txt"
    bad.write_text("max_batch_size { value: many }")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        cases = {
            "is not a folder": ["--model-base-path", str(tmp_path / "none")],
            f"batching parameters file {bad}": [
                "--model-base-path",
                str(tmp_path),
                "--batching-parameters-file",
                str(bad),
            ],
            "give both `--tls-certificate` and `--tls-key`": [
                "--model-base-path",
                str(tmp_path),
                "--tls-key",
                str(bad),
            ],
            f"`--tls-key {tmp_path / 'k'}` is not a file": [
                "--model-base-path",
                str(tmp_path),
                "--tls-key",
                str(tmp_path / "k"),
                "--tls-certificate",
                str(bad),
            ],
        }
        for message, argv in cases.items():
            assert main(["serve", *argv]) == 2
            (line,) = capsys.readouterr().err.strip().splitlines()
            assert line.startswith("ue serve: error: ") and message in line, line
    finally:
        root.handlers[:], root.level = handlers, level


@pytest.mark.parametrize(
    ("text", "size"), [("200KB", 200_000), ("4MB", 4 * 10**6), ("1MiB", 2**20)]
)
def test_budget_takes_units_on_preprocess_and_train(text: str, size: int) -> None:
    args, _ = preprocess_args(
        ["--input", "x", "--schema", "criteo", "--output", "o", "--budget", text]
    )
    assert load_spec(args).table == plan_budget(criteo(), size).table
    parser = training_cli.build_parser()
    job = training_cli.job_from(
        parser.parse_args(["--data", "d", "--model-dir", "m", "--budget", text])
    )
    assert job.budget == text


def test_train_refuses_bad_values_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["train", "--data", str(tmp_path), "--model-dir", str(tmp_path / "m")]
    for flags, message in (
        (["--budget", "4XB"], "`budget` should be a size like `4MB`"),
        (["--probes", "many"], "Received: `probes='many'`"),
        (["--plateau-decay", "0"], "`--plateau-decay` should be in (0, 1]"),
    ):
        assert main([*common, *flags]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
        assert line.startswith("ue train: error: ") and message in line, line
    assert not (tmp_path / "m").exists()
    assert main([*common]) == 2  # no records there
    assert "no spec.json in the data directory" in capsys.readouterr().err


def test_export_without_a_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    for model_dir in (tmp_path / "empty", tmp_path / "missing"):
        assert (
            main(["export", "--model-dir", str(model_dir), "--export-base", str(tmp_path / "e")])
            == 2
        )
        (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
        assert line == (
            f"ue export: error: no trained run in `--model-dir {model_dir}` "
            f"(run.json is missing): train one with `ue train`"
        )
    assert not (tmp_path / "e").exists()


def test_evaluate_refuses_a_missing_model_or_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exported_model
) -> None:  # type: ignore[no-untyped-def]
    assert main(["evaluate", "--model", str(tmp_path), "--input", "x"]) == 2
    assert f"no SavedModel at `--model {tmp_path}`" in capsys.readouterr().err
    args = ["evaluate", "--model", str(exported_model.export_base), "--input", str(tmp_path)]
    assert main(args) == 2
    assert f"`--input {tmp_path}` is not a file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def prep_without_eval(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """ue preprocess with --eval-fraction 0 (and one bad row); its stderr summary."""
    tmp = tmp_path_factory.mktemp("noeval")
    rows = tmp / "rows.tsv"
    rows.write_bytes(generate(300, SyntheticConfig(seed=1)).to_tsv_bytes() + b"x\ty\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "preprocess",
                    "--input",
                    str(rows),
                    "--schema",
                    "criteo",
                    "--output",
                    str(tmp / "prep"),
                    "--eval-fraction",
                    "0",
                    "--max-dead-fraction",
                    "0.5",
                ]
            )
            == 0
        )
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
    code = main(["train", "--data", str(prep), "--model-dir", str(tmp_path / "m"), "--steps", "2"])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith("ue train: error: the `eval` split has no rows")
    assert line.endswith(f"Received: `data={prep}`")
    assert not (tmp_path / "m" / "run.json").exists()


def test_evaluate_takes_the_schema_from_the_model(  # type: ignore[no-untyped-def]
    exported_model, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "evaluate",
        "--model",
        str(exported_model.version),
        "--input",
        str(exported_model.rows_file),
    ]
    assert main(args) == 0
    from_model = json.loads(capsys.readouterr().out)
    assert main([*args, "--schema", "criteo"]) == 0
    assert from_model == json.loads(capsys.readouterr().out) and from_model["rows"] == 200


def test_ue_evaluate_prints_a_warning_line_outside_the_band(  # type: ignore[no-untyped-def]
    exported_model, monkeypatch, capsys
) -> None:
    from unified_embedding.evaluation import evaluate

    args = [
        "evaluate",
        "--model",
        str(exported_model.version),
        "--input",
        str(exported_model.rows_file),
    ]
    for value, warned in ((13.8, True), (1.02, False)):
        report = {"rows": 10, "auc": 0.7, "logloss": 0.3, "calibration": value, "ece": 0.1}
        monkeypatch.setattr(evaluate, "evaluate", lambda *args, r=report: r)
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert json.loads(out) == report
        assert ("ue evaluate: warning: calibration" in err and "13.800" in err) == warned


def test_predict_reads_files_in_the_served_models_format(tmp_path: Path) -> None:
    """No --schema: the spec in GetModelInfo says how to read the file (here frappe's, where
    the old default, criteo, would fail)."""
    spec = frappe()
    rows = tmp_path / "rows.csv"
    columns = spec.input_format.columns
    lines = [",".join(columns)] + [
        ",".join("1" if c == "label" else f"{c}v{i}" for c in columns) for i in range(3)
    ]
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


def test_a_failed_job_is_one_line_with_its_cause() -> None:
    from unified_embedding.runtime.command import failure

    cause = RuntimeError("Traceback ...\n  ...\npipelines.jobs.DeadRowsError: 3 of 10 rows dead")
    assert failure(cause) == "3 of 10 rows dead"
    assert failure(OSError()) == "OSError"


def test_every_strategy_has_a_factory() -> None:
    from unified_embedding.training import strategies
    from unified_embedding.training.config import STRATEGIES

    assert set(strategies._FACTORIES) == set(STRATEGIES)
