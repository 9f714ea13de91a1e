"""A version folder copied into an export base as its next version, through a hidden staging
folder that no reader takes for a version (the end-to-end push: tests/integration/test_push.py)."""

from pathlib import Path

import pytest

from serving.model_versions import list_versions
from unified_embedding.contract.artifacts import SAVED_MODEL_FILE
from unified_embedding.exported import publish
from unified_embedding.exported.versions import locate, scan_versions, staging_folder


def version_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "candidates" / "17"
    (folder / "variables").mkdir(parents=True)
    (folder / SAVED_MODEL_FILE).write_bytes(b"graph")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    return folder


def test_copy_becomes_the_next_version_whole(source: Path, tmp_path: Path) -> None:
    base = tmp_path / "serving"  # absent: created
    first = publish.copy_as_next_version(source, base)
    second = publish.copy_as_next_version(source, base)
    assert int(second.name) > int(first.name)
    assert scan_versions(base).versions == [int(first.name), int(second.name)]
    assert version_files(second) == version_files(source)
    assert sorted(p.name for p in base.iterdir()) == [first.name, second.name]  # no staging left


def test_staging_folders_are_no_versions_to_any_reader(source: Path, tmp_path: Path) -> None:
    base = tmp_path / "serving"
    staging = staging_folder(base, "push")
    assert staging.parent == base and staging.name.startswith(".push-")
    (staging / "variables").mkdir(parents=True)
    (staging / SAVED_MODEL_FILE).write_bytes(b"half")
    assert scan_versions(base) == ([], [])
    assert list_versions(base) == []  # what `ue serve` loads
    with pytest.raises(FileNotFoundError):
        locate(base)  # what `ue evaluate` and `ue push` take as the newest version


def test_a_failed_copy_leaves_nothing_behind(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "serving"
    copied: list[str] = []
    copy_file = publish.copy_file

    def fail_on_second_file(src: str, dst: str) -> str:
        if copied:
            raise OSError("disk full")
        copied.append(copy_file(src, dst))
        return dst

    monkeypatch.setattr(publish, "copy_file", fail_on_second_file)
    with pytest.raises(Exception, match="disk full"):
        publish.copy_as_next_version(source, base)
    assert copied and list(base.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="holds no saved_model"):
        publish.copy_as_next_version(tmp_path, base)
