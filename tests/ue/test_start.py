"""How a `ue` process starts: a wrong flag or a missing file is refused before TensorFlow or Beam
is imported, and on a machine without a GPU TensorFlow and Beam start without their notices."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ue.cli import COMMANDS

# Runs `ue ARGV` in a fresh interpreter and prints its status and the heavy modules it imported.
PROBE = """
import json, sys
from ue.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = ("tensorflow", "apache_beam", "grpc")
print(json.dumps({"code": code, "imported": [m for m in heavy if m in sys.modules]}))
"""


def _probe(*argv: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    result["stderr"] = out.stderr
    return result


def test_ue_help_imports_nothing_heavy() -> None:
    result = _probe("--help")
    assert result["code"] == 0 and result["imported"] == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_wrong_flag_is_refused_before_tensorflow_or_beam(command: str) -> None:
    result = _probe(command, "--wrong-flag")
    assert result["code"] == 2, result["stderr"]
    assert "--wrong-flag" in str(result["stderr"]) or "required" in str(result["stderr"])
    assert not {"tensorflow", "apache_beam"} & set(result["imported"]), result  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--data", "/nope", "--model-dir", "/nope/m"],
        ["serve", "--model-base-path", "/nope"],
        ["evaluate", "--model", "/nope", "--input", "/nope.tsv"],
        ["predict", "--target", "127.0.0.1:1", "--input", "/nope.tsv"],
    ],
)
def test_a_missing_file_is_refused_before_tensorflow_or_beam(argv: list[str]) -> None:
    result = _probe(*argv)
    assert result["code"] == 2, result["stderr"]
    (line,) = str(result["stderr"]).strip().splitlines()
    assert line.startswith(f"ue {argv[0]}: error: ") and "/nope" in line
    assert not {"tensorflow", "apache_beam"} & set(result["imported"]), result  # type: ignore[arg-type]
    if argv[0] == "serve":  # its parent forks the workers: gRPC must not be loaded there
        assert result["imported"] == []


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
    kept = [
        "E0000 00:00:1.2 5463 op_kernel.cc:1] OUT_OF_RANGE: End of sequence",
        "W0000 00:00:1.2 5463 cpu_allocator.cc:1] Allocation exceeds 10% of memory",
        "ue export: error: no trained run",
    ]
    assert not any(CPU_ONLY_NOISE.search(line) for line in kept)


@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="a GPU machine logs its GPUs")
def test_a_cpu_only_machine_sees_only_the_error(tmp_path: Path) -> None:
    """A fresh `ue` process that imports TensorFlow: no absl/oneDNN/cuInit lines before the
    one-line error."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ue.cli",
            "export",
            "--model-dir",
            str(tmp_path / "none"),
            "--export-base",
            str(tmp_path / "e"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"ue export: error: no trained run in `--model-dir {tmp_path / 'none'}` (run.json is "
        f"missing): train one with `ue train`"
    ]


def test_export_logs_no_keras_config_notes(  # type: ignore[no-untyped-def]
    exported_model, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
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
    code = (
        "import logging; logging.basicConfig(); "
        "from unified_embedding.runtime.startup import import_beam_quietly; "
        "import_beam_quietly(); "
        "logging.warning('kept')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert "apitools" not in out.stderr and "WARNING:root:kept" in out.stderr
