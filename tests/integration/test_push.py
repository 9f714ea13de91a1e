"""`ue push` end to end on two trained models: the first push into an empty base, a candidate
that fails (exit 3, nothing copied, blessing.json says why) and one that passes (exit 0), bad
input (exit 2); a reader polling the serving base never sees a partial version, and a running
server switches to the pushed version without one failed request."""

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.preprocess import run as preprocess
from serving.client import ClientConfig, RankingClient, rows_from_file
from serving.model_manager import ManagerConfig
from serving.server import BackgroundServer, ServerConfig
from ue.cli import main
from unified_embedding.contract.artifacts import BLESSING_FILE, SAVED_MODEL_FILE
from unified_embedding.exported import publish
from unified_embedding.exported.versions import scan_versions
from unified_embedding.exported.writer import export
from unified_embedding.models.config import AutoIntConfig
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.loop import TrainJob, load_trained, train

LENIENT = ["--min-auc-gain", "-1", "--max-logloss-increase", "10", "--max-calibration-error", "10"]


@pytest.fixture(scope="module")
def models(exported_model, tmp_path_factory: pytest.TempPathFactory) -> dict:  # type: ignore[no-untyped-def]
    """The serving model (conftest's `exported_model`, 30 steps) and a candidate trained on
    other rows of the same generator (10 steps); labelled rows in two files, both unseen."""
    tmp = tmp_path_factory.mktemp("push")
    config = SyntheticConfig(seed=7, weighted_top_k=3, signal_scale=2.0)
    train_file = tmp / "train.tsv"
    train_file.write_bytes(generate(1500, config, start_row=5000).to_tsv_bytes())
    for i, start in enumerate((3000, 3400)):
        (tmp / f"day-{i}.tsv").write_bytes(generate(400, config, start_row=start).to_tsv_bytes())
    preprocess(["--input", str(train_file), "--schema", "criteo", "--output", str(tmp / "prep")])
    job = TrainJob(
        str(tmp / "prep"),
        str(tmp / "model"),
        budget="100KB",
        steps=10,
        eval_every=10,
        checkpoint_every=10,
        batch_size=128,
        model=AutoIntConfig(),
    )
    train(job)
    model, run = load_trained(job.model_dir)
    return {
        "candidate": export(model, run.feature_spec(), tmp / "candidates"),
        "baseline": exported_model.version,
        "rows": str(tmp / "day-*.tsv"),
        "rows_file": exported_model.rows_file,
    }


def files_of(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def prepare(models: dict, tmp_path: Path, baseline: bool = True) -> tuple[Path, Path]:
    """A fresh copy of the candidate (blessing.json is written into it) and a serving base
    holding the baseline as version 100 (or nothing)."""
    candidate = tmp_path / "export" / models["candidate"].name
    shutil.copytree(models["candidate"], candidate)
    base = tmp_path / "serving"
    if baseline:
        shutil.copytree(models["baseline"], base / "100")
    return candidate, base


def push(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    status = main(["push", *argv])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    return status, json.loads(lines[-1]) if lines else {}, err


def test_first_push_into_an_empty_base_needs_no_baseline(
    models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate, base = prepare(models, tmp_path, baseline=False)
    argv = ["--candidate", str(candidate), "--serving-base", str(base)]
    status, verdict, err = push(capsys, *argv, "--eval-input", models["rows"], *LENIENT)
    assert status == 0, err
    assert verdict["blessed"] and verdict["baseline"] is None and verdict["auc_difference"] is None
    assert [c["name"] for c in verdict["checks"]] == ["calibration_error"]
    assert verdict["rows"] == 800 and len(verdict["files"]) == 2
    (version,) = scan_versions(base).versions
    assert verdict["pushed"] == str(base / str(version))
    assert files_of(base / str(version)) == files_of(candidate)  # blessing.json included
    blessing = json.loads((candidate / BLESSING_FILE).read_text())
    assert {k: v for k, v in verdict.items() if k != "pushed"} == blessing
    assert err.startswith("ue push: pushed ") and "no serving version" in err
    assert err.count("\n") == 1


def test_a_failing_candidate_is_not_pushed_and_a_passing_one_is(
    models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate, base = prepare(models, tmp_path)
    argv = ["--candidate", str(candidate), "--serving-base", str(base)]
    status, verdict, err = push(
        capsys, *argv, "--eval-input", models["rows"], "--min-auc-gain", "0.5"
    )
    assert status == 3, err
    assert scan_versions(base).versions == [100]
    blessing = json.loads((candidate / BLESSING_FILE).read_text())
    assert blessing["blessed"] is False and verdict["pushed"] is None
    assert blessing["reasons"][0].startswith("auc_gain ") and "< --min-auc-gain 0.5" in err
    assert blessing["baseline"]["version"] == 100
    assert blessing["thresholds"]["min_auc_gain"] == 0.5
    comparison = blessing["auc_difference"]
    assert comparison["difference"] == pytest.approx(
        blessing["candidate_metrics"]["auc"] - blessing["baseline_metrics"]["auc"]
    )
    assert comparison["lower"] < comparison["difference"] < comparison["upper"]
    assert comparison["positives"] + comparison["negatives"] == 800
    assert err.startswith("ue push: not pushed: ") and err.count("\n") == 1

    status, verdict, err = push(capsys, *argv, "--eval-input", models["rows"], *LENIENT)
    assert status == 0, err
    assert json.loads((candidate / BLESSING_FILE).read_text())["blessed"] is True
    old, new = scan_versions(base).versions
    assert old == 100 and verdict["pushed"] == str(base / str(new))


def test_bad_input_is_status_2_in_one_line(
    models: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidate, base = prepare(models, tmp_path)
    argv = ["--candidate", str(candidate), "--serving-base", str(base)]
    status, _, err = push(capsys, *argv, "--eval-input", str(tmp_path / "none-*.tsv"))
    assert status == 2
    assert err == f"ue push: error: `--eval-input {tmp_path / 'none-*.tsv'}` matches no file\n"
    one_class = tmp_path / "clicks.tsv"
    one_class.write_text("1\t" + "\t" * 38 + "\n")  # a criteo row: label, 13 + 26 empty cells
    status, _, err = push(capsys, *argv, "--eval-input", str(one_class))
    assert status == 2 and "should hold at least 2 positive and 2 negative rows" in err
    assert not (candidate / BLESSING_FILE).exists() and scan_versions(base).versions == [100]


class Poller:
    """Lists the serving base's versions in a loop and reads each one's files, recording any
    version that differs from `expected(version)`, and whether a staging folder was seen."""

    def __init__(self, base: Path, expected: Callable[[int], dict[str, int]]) -> None:
        self.base, self.expected = base, expected
        self.partial: list[tuple[int, dict]] = []
        self.versions: set[int] = set()
        self.saw_staging = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.saw_staging |= any(p.name.startswith(".") for p in self.base.iterdir())
            for version in scan_versions(self.base).versions:
                folder = self.base / str(version)
                try:  # opens the files a loader opens first
                    (folder / SAVED_MODEL_FILE).read_bytes()
                    for p in (folder / "variables").iterdir():
                        p.read_bytes()
                    files = files_of(folder)
                except OSError as e:
                    files = {"error": str(e)}  # type: ignore[dict-item]
                if files != self.expected(version):
                    self.partial.append((version, files))
                self.versions.add(version)

    def __enter__(self) -> "Poller":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def slow_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file of a push's copy takes 50 ms more: the window a reader could hit widens."""
    copy_file = publish.copy_file

    def slow_copy(source: str, target: str) -> str:
        time.sleep(0.05)
        return copy_file(source, target)

    monkeypatch.setattr(publish, "copy_file", slow_copy)


def test_a_reader_polling_the_base_never_sees_a_partial_version(
    models: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    candidate, base = prepare(models, tmp_path)
    slow_copies(monkeypatch)
    served = files_of(base / "100")
    # a new version must be the candidate whole, blessing.json included (written before the
    # copy starts)
    with Poller(base, lambda v: served if v == 100 else files_of(candidate)) as poller:
        argv = ["--candidate", str(candidate), "--serving-base", str(base)]
        status, verdict, err = push(capsys, *argv, "--eval-input", models["rows"], *LENIENT)
        assert status == 0, err
        new = int(Path(verdict["pushed"]).name)
        deadline = time.monotonic() + 30
        while new not in poller.versions and time.monotonic() < deadline:
            time.sleep(0.01)
    assert poller.partial == []
    assert poller.versions == {100, new}
    assert poller.saw_staging, "the reader never ran while the copy was being written"


class Load:
    """Scores rows through the server in a loop on a thread; records errors and versions."""

    def __init__(self, target: str, rows: list) -> None:
        self.client = RankingClient(target, ClientConfig(timeout_seconds=10, retries=0))
        self.rows, self.count = rows, 0
        self.errors: list[Exception] = []
        self.versions: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                start = self.count % 50
                self.versions.append(
                    self.client.score(self.rows[start : start + 3]).model_spec.version
                )
            except Exception as e:
                self.errors.append(e)
            self.count += 1

    def wait(self, condition: Callable[[], bool], seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.02)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()


def test_a_running_server_switches_to_the_pushed_version_without_a_failed_request(
    models: dict,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    candidate, base = prepare(models, tmp_path)
    slow_copies(monkeypatch)  # the server polls every 0.1 s, during the copy too
    config = ServerConfig(ManagerConfig(base, poll_seconds=0.1), port=0, grace_seconds=2)
    with BackgroundServer(config) as server:
        info = RankingClient(server.target).model_info()
        with Load(server.target, rows_from_file(models["rows_file"], "criteo", info)) as load:
            load.wait(lambda: load.count > 20)
            argv = ["--candidate", str(candidate), "--serving-base", str(base)]
            status, verdict, err = push(capsys, *argv, "--eval-input", models["rows"], *LENIENT)
            assert status == 0, err
            new = int(Path(verdict["pushed"]).name)
            load.wait(lambda: bool(load.versions) and load.versions[-1] == new)
            seen = load.count
            load.wait(lambda: load.count > seen + 20)
    assert load.errors == []
    assert load.versions[0] == 100 and set(load.versions) == {100, new}
