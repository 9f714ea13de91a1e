"""The artifact layout has one owner: names, record globs, version folders."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unified_embedding.contract import artifacts
from unified_embedding.contract.artifacts import (
    MAX_VERSION,
    NoVersionLeft,
    newest_version,
    next_version,
    parse_version,
    record_glob,
    resolve_saved_model,
    scan_versions,
)

ROOT = Path(__file__).resolve().parents[3]
# Literals that only artifacts.py may spell out (docstrings and help text may mention them).
OWNED = {"spec.json", "stats.json", "run.json", "embedding.json", "weights/best", ".lengths",
         "saved_model.pb", "assets/spec.json", "dead_letters", ".tfrecord.gz"}  # fmt: skip
OWNED_PARTS = ("tf_serving_warmup", ".tfrecord", "dead_letters-")


def _literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings
    ]  # fmt: skip


def test_no_module_but_artifacts_spells_an_artifact_name() -> None:
    found = []
    for package in ("unified_embedding", "pipelines", "serving"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "artifacts.py":
                continue
            for text in _literals(path):
                if text in OWNED or any(part in text for part in OWNED_PARTS):
                    found.append(f"{path.relative_to(ROOT)}: {text!r}")
    assert found == []


def test_version_folders() -> None:
    assert [parse_version(n) for n in ("1", "0", "1700000000", str(2**63 - 1))] == [
        1, 0, 1700000000, 2**63 - 1]  # fmt: skip
    odd = ("", "01", "v2", "²", "1.5", "-1", " 1", str(2**63), ".17.partial")
    assert [parse_version(n) for n in odd] == [None] * len(odd)
    paths = ["gs://b/m/9", "gs://b/m/10/", "gs://b/m/011", "gs://b/m/v99", "gs://b/m/²"]
    assert newest_version(paths) == "gs://b/m/10/"  # numerically, not as text
    assert newest_version(["m/v1", "m/x"]) is None


def test_next_version_stays_within_int64(tmp_path: Path) -> None:
    assert next_version(tmp_path / "absent", now=1700000000.7) == 1700000000
    (tmp_path / "1700000005").mkdir()
    assert next_version(tmp_path, now=1700000000) == 1700000006  # newest + 1 beats the clock
    assert next_version(tmp_path, now=1800000000) == 1800000000
    (tmp_path / str(MAX_VERSION - 1)).mkdir()
    assert next_version(tmp_path, now=1800000000) == MAX_VERSION
    (tmp_path / str(MAX_VERSION)).mkdir()
    with pytest.raises(
        NoVersionLeft, match=re.escape(f"`--export-base {tmp_path}`: `{tmp_path}/{MAX_VERSION}`")
    ):
        next_version(tmp_path)
    (tmp_path / str(2**63)).mkdir()  # beyond int64: not a version, no help either
    with pytest.raises(NoVersionLeft):
        next_version(tmp_path)


def test_export_and_server_share_one_version_rule(tmp_path: Path) -> None:
    """The folders a server loads are exactly the versions; the next export is one of them."""
    from serving import model_versions

    weird = ("²", "007", "v2", "-1", "1.5", " 3", "١٢", str(2**63), "99999999999999999999")
    for name in (*weird, "42", "1700000000", ".export-1a2b.partial", ".1800000000"):
        (tmp_path / name).mkdir()
    (tmp_path / "1900000000").write_text("a file: no folder can take its name")
    assert model_versions.scan_versions is scan_versions
    assert scan_versions(tmp_path) == ([42, 1700000000], sorted(weird))
    version = next_version(tmp_path, now=0)
    assert version == 1900000001 and parse_version(str(version)) == version
    (tmp_path / str(version)).mkdir()
    assert scan_versions(tmp_path).versions[-1] == version  # the server serves the new export


def test_record_glob_matches_the_shards_the_sink_writes() -> None:
    assert record_glob("train") == "train-*.tfrecord.gz"
    assert Path("train-00000-of-00002.tfrecord.gz").match(record_glob("train"))
    assert not Path("eval-00000-of-00002.tfrecord.gz").match(record_glob("train"))


def test_resolve_saved_model(tmp_path: Path) -> None:
    for name in ("7", "12", "012", "v99", ".13.partial", "20"):
        (tmp_path / name).mkdir()
    for name in ("7", "12", "012", "v99", ".13.partial"):  # 20 holds no SavedModel
        (tmp_path / name / artifacts.SAVED_MODEL_FILE).write_bytes(b"")
    assert resolve_saved_model(tmp_path) == tmp_path / "12"
    assert resolve_saved_model(tmp_path / "7") == tmp_path / "7"
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        resolve_saved_model(tmp_path / "20")


def test_importing_the_layout_loads_no_tensorflow() -> None:
    """The server's parent process and the Beam launchers read names from it."""
    code = (
        "import sys, unified_embedding.contract.artifacts, pipelines.preprocess, pipelines.score; "
        "print(sorted(m for m in ('tensorflow', 'tensorflow_recommenders') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)  # fmt: skip
    assert out.stdout.strip() == "[]"
