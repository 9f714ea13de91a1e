"""`ue serve` as its own process and `ue predict` against it (rows, and ranking requests with a
shared context); SIGTERM stops it gracefully. Several workers: tests/serving/test_workers.py."""

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from ue.cli import main
from unified_embedding.contract.schemas import criteo
from unified_embedding.evaluation.evaluate import score_rows
from unified_embedding.rows.reader import read_rows


def test_ue_serve_and_ue_predict(exported_model, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ue.cli",
            "serve",
            "--model-base-path",
            str(exported_model.export_base),
            "--port",
            str(port),
            "--model-name",
            "ctr",
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # retries on UNAVAILABLE cover the start-up (no model loaded yet, or not listening)
        args = [
            "predict",
            "--target",
            f"127.0.0.1:{port}",
            "--input",
            str(exported_model.rows_file),
            "--retries",
            "12",
            "--max-rows-per-request",
            "64",
        ]
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["model"] == "ctr" and out["version"] == int(exported_model.version.name)
        expected = score_rows(exported_model.version, read_rows(criteo(), exported_model.rows_file))
        np.testing.assert_allclose(out["probabilities"], expected, rtol=1e-5, atol=1e-6)
        # ranking requests: C1 sent once per request, the other fields column-wise
        assert main([*args, "--context", "C1=abc", "--context", "I1="]) == 0
        ranked = json.loads(capsys.readouterr().out)["probabilities"]
        rows = read_rows(criteo(), exported_model.rows_file)
        rows.columns["C1"][:], rows.columns["I1"][:] = "abc", ""
        same = score_rows(exported_model.version, rows)
        np.testing.assert_allclose(ranked, same, rtol=1e-5, atol=1e-6)
        assert main([*args, "--columns"]) == 0
        columns = json.loads(capsys.readouterr().out)["probabilities"]
        np.testing.assert_allclose(columns, expected, rtol=1e-5, atol=1e-6)
        assert main([*args, "--model-name", "other"]) == 1
        assert "NOT_FOUND: unknown model `other`" in capsys.readouterr().err
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err[-2000:]
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert {"listening", "stopped"} <= {entry["message"] for entry in logs}
