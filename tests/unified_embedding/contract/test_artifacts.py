"""The artifact layout has one owner: names and record globs (version folders:
tests/unified_embedding/exported/test_versions.py)."""

import ast
import subprocess
import sys
from pathlib import Path

from unified_embedding.contract.artifacts import record_glob

ROOT = Path(__file__).resolve().parents[3]
# Literals that only artifacts.py may spell out (docstrings and help text may mention them).
OWNED = {
    "spec.json",
    "stats.json",
    "run.json",
    "embedding.json",
    "weights/best",
    ".lengths",
    "saved_model.pb",
    "assets/spec.json",
    "dead_letters",
    ".tfrecord.gz",
    "blessing.json",
}
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
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


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


def test_record_glob_matches_the_shards_the_sink_writes() -> None:
    assert record_glob("train") == "train-*.tfrecord.gz"
    assert Path("train-00000-of-00002.tfrecord.gz").match(record_glob("train"))
    assert not Path("eval-00000-of-00002.tfrecord.gz").match(record_glob("train"))


def test_importing_the_layout_loads_no_tensorflow() -> None:
    """The server's parent process and the Beam launchers read names from it; the jobs' mains
    parse their flags before Beam or TensorFlow is imported."""
    code = (
        "import sys, unified_embedding.contract.artifacts, unified_embedding.exported.versions, "
        "pipelines.preprocess, pipelines.score; print(sorted(m for m in ('tensorflow', "
        "'tensorflow_recommenders', 'apache_beam') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
