"""The version rule has one owner: which folders under an export base are versions, the newest,
the next export's, and which folder a model path names (a base or a version), for the server,
`ue export`, `ue score`, `ue evaluate` alike."""

import re
from pathlib import Path

import pytest

from unified_embedding.contract.artifacts import SAVED_MODEL_FILE
from unified_embedding.exported.versions import (
    MAX_VERSION,
    ModelFolder,
    NoVersionLeft,
    locate,
    newest_version,
    next_version,
    parse_version,
    scan_versions,
    split_version,
)


def test_version_folders() -> None:
    assert [parse_version(n) for n in ("1", "0", "1700000000", str(2**63 - 1))] == [
        1,
        0,
        1700000000,
        2**63 - 1,
    ]
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


def test_a_model_path_names_its_newest_version_or_itself(tmp_path: Path) -> None:
    for name in ("7", "12", "012", "v99", ".13.partial", "20", "latest"):
        (tmp_path / name).mkdir()
    for name in ("7", "12", "012", "v99", ".13.partial", "latest"):  # 20 holds no SavedModel
        (tmp_path / name / SAVED_MODEL_FILE).write_bytes(b"")
    assert locate(tmp_path) == ModelFolder(str(tmp_path / "12"), 12)
    assert locate(f"{tmp_path}/") == ModelFolder(str(tmp_path / "12"), 12)
    assert locate(tmp_path / "7") == ModelFolder(str(tmp_path / "7"), 7)
    latest = locate(tmp_path / "latest")  # a copied version keeps its SavedModel, not a number
    assert latest.version is None and latest.name == "latest"
    for empty in (tmp_path / "20", tmp_path / "absent"):
        with pytest.raises(FileNotFoundError, match=r"no SavedModel at `--model .*` nor in"):
            locate(empty)


def test_a_version_folder_stands_for_its_base_with_that_version(tmp_path: Path) -> None:
    (tmp_path / "17").mkdir()
    (tmp_path / "17" / SAVED_MODEL_FILE).write_bytes(b"")
    (tmp_path / "18").mkdir()  # no SavedModel: a folder named like a version is not enough
    assert split_version(tmp_path / "17") == (tmp_path, 17)
    assert split_version(tmp_path / "18") == (tmp_path / "18", None)
    assert split_version(tmp_path) == (tmp_path, None)
