"""A job owns its outputs and accounts for every input, driven through `ue preprocess` on temp
files: the manifest, --overwrite removing exactly an earlier manifest's files, directories
holding anything else refused, input and output that overlap refused before anything is
touched, failed runs leaving nothing behind; unreadable matches, empty compressed files and
empty inputs failing, and stats.json's rows per input file. (`ue score` shares the code:
tests/integration/test_score_job.py runs the same rules once.)"""

import bz2
import gzip
import io
import json
import lzma
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from apache_beam.io.filesystem import FileMetadata, FileSystem

from pipelines.accounting import (
    FileRows,
    FilesRead,
    MergeFilesReadFn,
    MergeFn,
    RowCounts,
    check_files,
    files_document,
)
from pipelines.globs import globs_overlap, literal
from pipelines.jobs import EmptyInputError
from pipelines.outputs import JobOutputs
from pipelines.preprocess import run, summary
from pipelines.read import UnreadableInput, matched_files
from pipelines.stats import BlockStats
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.textfile import CorruptInput
from unified_embedding.synthetic import SyntheticConfig, generate


def generated(rows: int, seed: int = 0) -> bytes:
    return generate(rows, SyntheticConfig(seed=seed)).to_tsv_bytes()


def preprocess(inputs: Path | str, output: Path, *extra: str) -> dict:
    return run(["--input", str(inputs), "--schema", "criteo", "--output", str(output), *extra])


def manifest(output: Path) -> dict:
    return json.loads((output / "manifest.json").read_text())


def listing(output: Path) -> dict[str, bytes]:
    """Every entry under `output` (recursively) with its bytes; folders as b"/"."""
    found = {}
    for root, folders, files in os.walk(output):
        for name in folders:
            found[os.path.relpath(os.path.join(root, name), output)] = b"/"
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, output)] = Path(path).read_bytes()
    return found


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.tsv").write_bytes(generated(600))
    return data / "rows.tsv"


def test_the_manifest_names_exactly_the_files_written_and_the_spec(
    tmp_path: Path, rows: Path
) -> None:
    output = tmp_path / "out"
    output.mkdir()  # an existing empty directory is fine
    preprocess(rows, output)
    written = manifest(output)
    assert written["job"] == "preprocess"
    assert written["spec_fingerprint"] == FeatureSpec.load(output / "spec.json").fingerprint
    assert sorted(written["files"]) == sorted(set(listing(output)) - {"manifest.json"})
    assert {"spec.json", "stats.json"} <= set(written["files"])
    assert any(f.startswith("train-") for f in written["files"])


def test_overwrite_removes_exactly_the_earlier_manifests_files(tmp_path: Path, rows: Path) -> None:
    output = tmp_path / "out"
    preprocess(rows, output)
    # an earlier run with two train shards (one already gone): both are its to remove
    earlier = manifest(output)
    earlier["files"] += ["train-00001-of-00002.tfrecord.gz", "train-00002-of-00002.tfrecord.gz"]
    (output / "manifest.json").write_text(json.dumps(earlier))
    (output / "train-00001-of-00002.tfrecord.gz").write_bytes(b"an earlier run's")
    # a shard named like the job's own but written by someone else, and a note
    (output / "train-00007-of-00009.tfrecord.gz").write_bytes(b"theirs")
    (output / "notes.txt").write_text("mine")
    before = listing(output)
    for extra in ([], ["--overwrite"]):
        with pytest.raises(
            FileExistsError,
            match=r"holds 2 entries that no manifest.json names "
            r"\(notes.txt, train-00007-of-00009.tfrecord.gz\)",
        ):
            preprocess(rows, output, *extra)
        assert listing(output) == before  # nothing touched
    (output / "train-00007-of-00009.tfrecord.gz").unlink()
    (output / "notes.txt").unlink()
    with pytest.raises(FileExistsError, match=r"holds \d+ files of an earlier run.*--overwrite"):
        preprocess(rows, output)
    other = tmp_path / "other.tsv"
    other.write_bytes(generated(300, seed=1))
    stats = preprocess(other, output, "--overwrite")
    assert stats["rows_read"] == 300 and list(stats["files"]) == [str(other)]
    assert not (output / "train-00001-of-00002.tfrecord.gz").exists()
    assert sorted(manifest(output)["files"]) == sorted(set(listing(output)) - {"manifest.json"})


def test_a_directory_of_files_no_manifest_names_is_refused_listing_a_few(
    tmp_path: Path, rows: Path
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    for i in range(8):
        (output / f"stats{i}.json").write_text("{}")
    (output / "sub").mkdir()
    before = listing(output)
    for extra in ([], ["--overwrite"]):
        with pytest.raises(
            FileExistsError,
            match=r"holds 9 entries .*\(stats0.json, stats1.json, "
            r"stats2.json, stats3.json, stats4.json and 4 more\)",
        ):
            preprocess(rows, output, *extra)
    assert listing(output) == before


@pytest.mark.parametrize(
    "tampered",
    ["not json", '{"job": "preprocess", "spec_fingerprint": "x", "files": ["../data/rows.tsv"]}'],
)
def test_a_manifest_naming_files_elsewhere_is_refused(
    tmp_path: Path, rows: Path, tampered: str
) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "manifest.json").write_text(tampered)
    with pytest.raises(ValueError, match=r"manifest.json` is not a manifest of a `ue` job"):
        preprocess(rows, output, "--overwrite")
    assert rows.exists() and listing(output) == {"manifest.json": tampered.encode()}


def test_an_input_inside_the_output_directory_is_refused_before_anything_is_touched(
    tmp_path: Path, rows: Path
) -> None:
    output = tmp_path / "out"
    preprocess(rows, output)
    (output / "rows.tsv").write_bytes(rows.read_bytes())  # the case: input in output
    before = listing(output)
    for pattern in (output / "rows.tsv", f"{output}/*.tsv", f"{tmp_path}/../{tmp_path.name}/out/*"):
        with pytest.raises(ValueError, match=r"reads \d+ files? inside `--output .*out`"):
            preprocess(pattern, output, "--overwrite")
        assert listing(output) == before  # the input, the earlier run, no beam-temp-*


@pytest.mark.parametrize(
    ("pattern", "output"),
    [
        ("data/**", "data/out"),  # a recursive glob over the output's parent
        ("*/*", "out"),  # matches out/spec.json once it exists
        ("d*/*", "data2"),  # matches data2/stats.json, not only data/rows.tsv
        ("data/rows.tsv", "data/rows.tsv"),  # the output is the input
    ],
)
def test_a_glob_that_would_match_the_outputs_is_refused(
    tmp_path: Path, rows: Path, pattern: str, output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"would match the job's own outputs|reads 1 file inside"):
        preprocess(f"./{pattern}", tmp_path / output)
    assert not (tmp_path / output).is_dir()


def test_a_glob_beside_the_output_reads_only_the_input(tmp_path: Path, rows: Path) -> None:
    stats = preprocess(f"{rows.parent}/*", rows.parent / "out")  # `*` stays out of data/out/
    assert list(stats["files"]) == [str(rows)] and stats["rows_read"] == 600


def test_a_failed_job_leaves_no_temporary_folders_nor_outputs(
    tmp_path: Path, rows: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ue.cli import main

    data = gzip.compress(generated(2000))
    (rows.parent / "cut.tsv.gz").write_bytes(data[: len(data) // 2])
    output = tmp_path / "out"
    preprocess(rows, output)  # an earlier run, replaced by --overwrite
    capsys.readouterr()
    code = main(
        [
            "preprocess",
            "--input",
            f"{rows.parent}/*",
            "--schema",
            "criteo",
            "--output",
            str(output),
            "--overwrite",
        ]
    )
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ue ")]
    assert len(errors) == 1
    assert errors[0].startswith("ue preprocess: failed: ") and "cut.tsv.gz: truncated" in errors[0]
    assert listing(output) == {}  # no beam-temp-*, no spec.json, no shard
    preprocess(rows, output)  # and a rerun needs no --overwrite


def test_the_manifest_stays_when_the_dead_row_limit_fails(tmp_path: Path) -> None:
    lines = generated(100).splitlines() + [b"1\t2"] * 5
    (tmp_path / "bad.tsv").write_bytes(b"\n".join(lines) + b"\n")
    output = tmp_path / "out"
    with pytest.raises(RuntimeError, match=r"5 of 105 rows"):
        preprocess(tmp_path / "bad.tsv", output)
    written = manifest(output)["files"]
    assert sorted(written) == sorted(set(listing(output)) - {"manifest.json"})
    assert any(f.startswith("dead_letters-") for f in written)


def test_an_unreadable_match_fails_naming_it(tmp_path: Path, rows: Path) -> None:
    (rows.parent / "gone.tsv").symlink_to(tmp_path / "nowhere.tsv")
    with pytest.raises(UnreadableInput, match=r"matches `.*gone.tsv`.*a link to nothing"):
        preprocess(f"{rows.parent}/*", tmp_path / "out")
    with pytest.raises(UnreadableInput, match=r"a link to nothing"):
        preprocess(rows.parent / "gone.tsv", tmp_path / "out")
    (rows.parent / "gone.tsv").unlink()
    (rows.parent / "old").mkdir()
    (rows.parent / "old" / "more.tsv").write_bytes(generated(50, seed=3))
    with pytest.raises(UnreadableInput, match=r"matches `.*old`.*a folder, not a file.*\*\*"):
        preprocess(f"{rows.parent}/*", tmp_path / "out")
    with pytest.raises(UnreadableInput, match=r"a folder, not a file"):
        preprocess(rows.parent / "old", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    stats = preprocess(f"{rows.parent}/**", tmp_path / "out")  # every file below, folders aside
    assert sorted(stats["files"]) == [str(rows.parent / "old" / "more.tsv"), str(rows)]
    assert stats["rows_read"] == 650


def test_a_glob_without_a_folder_matches_in_the_working_directory(
    rows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(rows.parent)  # Beam's own match finds nothing for `*.tsv`
    assert [Path(m.path).name for m in matched_files("*.tsv")] == [rows.name]
    with pytest.raises(FileNotFoundError, match=r"no input file matches `--input \*.csv`"):
        matched_files("*.csv")


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_a_zero_byte_compressed_file_fails_as_corrupt(
    tmp_path: Path, rows: Path, suffix: str
) -> None:
    (rows.parent / f"empty.tsv{suffix}").write_bytes(b"")
    name = re.escape(f"empty.tsv{suffix}: a {suffix} file of 0 bytes")
    with pytest.raises(CorruptInput, match=name):
        preprocess(f"{rows.parent}/*", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_no_row_read_fails_unless_allow_empty(tmp_path: Path) -> None:
    schema = {
        "name": "movies",
        "columns": ["clicked", "city"],
        "label": "clicked",
        "delimiter": ",",
        "header": True,
    }
    (tmp_path / "movies.json").write_text(json.dumps(schema))
    (tmp_path / "header_only.csv").write_text("clicked,city\n")
    (tmp_path / "empty.csv").write_bytes(b"")
    args = ["--input", str(tmp_path / "*.csv"), "--schema", str(tmp_path / "movies.json")]
    with pytest.raises(EmptyInputError, match=r"read 0 rows from the 2 files .*--allow-empty"):
        run([*args, "--output", str(tmp_path / "out")])
    assert manifest(tmp_path / "out")["files"]  # its stats.json says which files were empty
    stats = run([*args, "--output", str(tmp_path / "out2"), "--allow-empty"])
    assert stats["rows_read"] == 0
    assert stats["files"] == {
        str(tmp_path / n): {"rows_read": 0, "rows_valid": 0, "rows_dead": 0}
        for n in ("empty.csv", "header_only.csv")
    }


def test_stats_list_every_input_file_with_rows_read_valid_and_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipelines.read

    data = tmp_path / "data"
    data.mkdir()
    good = generated(1200).splitlines()
    (data / "a.tsv").write_bytes(b"\n".join(good[:1000] + [b"1\t2"] * 7) + b"\n")
    (data / "b.tsv.gz").write_bytes(gzip.compress(b"\n".join(good[1000:]) + b"\n"))
    (data / "c.tsv.bz2").write_bytes(bz2.compress(b"7" + good[0][1:] + b"\n"))
    (data / "d.tsv.xz").write_bytes(lzma.compress(b""))  # an empty stream: valid, no row
    (data / "e.tsv").write_bytes(b"")
    monkeypatch.setattr(pipelines.read, "SPLIT_BYTES", 40_000)  # a.tsv in several ranges
    stats = preprocess(
        f"{data}/*", tmp_path / "out", "--block-rows", "64", "--max-dead-fraction", "1"
    )
    expected = {
        "a.tsv": (1007, 1000, 7),
        "b.tsv.gz": (200, 200, 0),
        "c.tsv.bz2": (1, 0, 1),
        "d.tsv.xz": (0, 0, 0),
        "e.tsv": (0, 0, 0),
    }
    assert stats["files"] == {
        str(data / name): {"rows_read": r, "rows_valid": v, "rows_dead": d}
        for name, (r, v, d) in expected.items()
    }
    assert sum(f["rows_read"] for f in stats["files"].values()) == stats["rows_read"] == 1208
    text = summary(stats, str(tmp_path / "out"))
    assert re.search(r"input files +5\n", text)
    assert f"7 of 1,007 rows dead: {data / 'a.tsv'}" in text and "no row: " in text


def test_a_file_whose_rows_do_not_add_up_fails_naming_it() -> None:
    files = {"a.tsv": FileRows(10, 9, 1), "b.tsv": FileRows(5, 5, 0)}
    lines = {"a.tsv": 10, "b.tsv": 5, "e.tsv": 0}
    matched = ("a.tsv", "b.tsv", "e.tsv")
    check_files(files, FilesRead(matched, lines), "valid")  # e.tsv: read, without a row
    with pytest.raises(RuntimeError, match=r"1 matched files were never read \(e.g. c.tsv\)"):
        check_files(files, FilesRead((*matched, "c.tsv"), lines), "valid")
    with pytest.raises(RuntimeError, match=r"read but never matched \(e.g. e.tsv\)"):
        check_files(files, FilesRead(("a.tsv", "b.tsv"), lines), "valid")
    with pytest.raises(RuntimeError, match=r"rows lost in b.tsv: 6 read, 5 checked, 5 valid"):
        check_files(files, FilesRead(matched, {**lines, "b.tsv": 6}), "valid")
    short = {**files, "a.tsv": FileRows(10, 8, 1)}
    with pytest.raises(RuntimeError, match=r"rows lost in a.tsv: .* 8 valid \+ 1 dead"):
        check_files(short, FilesRead(matched, lines), "valid")
    assert files_document(files, "rows_valid", FilesRead(matched, lines))["e.tsv"] == {
        "rows_read": 0,
        "rows_valid": 0,
        "rows_dead": 0,
    }


def test_per_file_rows_and_lines_read_merge_in_any_grouping() -> None:
    parts = [
        BlockStats(RowCounts(files={"a": FileRows(3, 2, 1)})),
        BlockStats(RowCounts(files={"b": FileRows(1, 1)})),
        BlockStats(RowCounts(files={"a": FileRows(4, 4)})),
    ]
    combine = MergeFn(BlockStats)
    halves = [combine.create_accumulator(), combine.create_accumulator()]
    for i, part in enumerate(parts):
        combine.add_input(halves[i % 2], part)
    total = combine.merge_accumulators(halves)
    assert total.rows.files == {"a": FileRows(7, 6, 1), "b": FileRows(1, 1, 0)}
    assert parts[0].rows.files["a"] == FileRows(3, 2, 1)  # inputs left alone
    reports = MergeFilesReadFn()
    left, right = reports.create_accumulator(), reports.create_accumulator()
    for i, report in enumerate([("a", 3), ("b", 1), ("e", 0), ("a", 4)]):
        reports.add_input(left if i % 2 else right, report)
    assert reports.merge_accumulators([left, right]) == {"a": 7, "b": 1, "e": 0}


def test_the_summary_names_a_few_files_not_thousands() -> None:
    files = {
        f"logs/part-{i:05d}.tsv": {"rows_read": 100, "rows_valid": 100 - i % 3, "rows_dead": i % 3}
        for i in range(5000)
    }
    files["logs/part-00000.tsv"]["rows_read"] = 0
    stats = {
        "rows_read": 500_000,
        "rows_valid": 495_000,
        "rows_dead": 5_000,
        "dead_by_reason": {"bad_label": 5_000},
        "rows_by_split": {"train": 495_000},
        "files": files,
    }
    lines = summary(stats, "out").splitlines()
    assert len(lines) < 20
    assert any("input files" in line and "5,000" in line for line in lines)
    assert "... " in "\n".join(lines) and "stats.json `files`" in "\n".join(lines)


@pytest.mark.parametrize(
    ("glob", "path", "overlap"),
    [
        ("data/**", "data/out/spec.json", True),
        ("data/*", "data/out/spec.json", False),  # `*` never crosses a `/`
        ("out/*.tsv", "out/train-*.tfrecord.gz", False),
        ("out/*", "out/train-*.tfrecord.gz", True),
        ("out/train-0000[1-9]*", "out/train-*.tfrecord.gz", True),
        ("out/[b-d].json", "out/[!bd].json", True),  # c
        ("out/x[!a-z]", "out/x[a-z]", False),
        ("out/?", "out/ab", False),
        ("*/*", "out/spec.json", True),
        ("o[1]/*", literal("o[1]") + "/spec.json", False),  # the glob means o1/*
        ("o[[]1]/*", literal("o[1]") + "/spec.json", True),
    ],
)
def test_globs_overlap_as_beam_matches_them(glob: str, path: str, overlap: bool) -> None:
    assert globs_overlap(glob, path) is overlap
    assert globs_overlap(path, glob) is overlap


class ObjectStore(FileSystem):
    """`objects://`: a file system without folders, as GCS or S3 look to Beam (class-wide
    objects: Beam makes a new instance per call)."""

    objects: ClassVar[dict[str, bytes]] = {}

    @classmethod
    def scheme(cls) -> str:
        return "objects"

    def has_dirs(self) -> bool:
        return False

    def join(self, base: str, *paths: str) -> str:
        return "/".join([base.rstrip("/"), *paths])

    def split(self, path: str) -> tuple[str, str]:
        head, _, tail = path.rpartition("/")
        return head, tail

    def mkdirs(self, path: str) -> None:
        pass  # no folders

    def _list(self, prefix: str) -> Iterator[FileMetadata]:
        for path, data in list(self.objects.items()):
            if path.startswith(prefix):
                yield FileMetadata(path, len(data))

    def create(self, path: str, *args: object, **kwargs: object) -> io.BytesIO:
        objects = self.objects

        class Upload(io.BytesIO):
            def close(self) -> None:
                objects[path] = self.getvalue()
                super().close()

        return Upload()

    def open(self, path: str, *args: object, **kwargs: object) -> io.BytesIO:
        return io.BytesIO(self.objects[path])

    def exists(self, path: str) -> bool:
        return path in self.objects

    def metadata(self, path: str) -> FileMetadata:
        return FileMetadata(path, len(self.objects[path]))

    def size(self, path: str) -> int:
        return len(self.objects[path])

    def delete(self, paths: list[str]) -> None:
        for path in paths:
            del self.objects[path]

    def copy(self, *args: object) -> None:
        raise NotImplementedError

    def rename(self, *args: object) -> None:
        raise NotImplementedError

    def last_updated(self, path: str) -> float:
        raise NotImplementedError


def test_the_rules_hold_on_a_file_system_without_folders() -> None:
    from apache_beam.io.filesystems import FileSystems

    store = ObjectStore.objects
    store.clear()
    store["objects://b/logs/day1.tsv"] = b"theirs"
    outputs = JobOutputs("preprocess", "objects://b/out/", ("spec.json", "train-*.tfrecord.gz"))

    def write(*names: str) -> None:
        for name in names:
            with FileSystems.create(f"objects://b/out/{name}") as f:
                f.write(name.encode())

    with outputs.writing(overwrite=False, fingerprint="f1"):
        write("spec.json", "train-00000-of-00001.tfrecord.gz")
    written = json.loads(store["objects://b/out/manifest.json"])
    assert written == {
        "job": "preprocess",
        "spec_fingerprint": "f1",
        "files": ["spec.json", "train-00000-of-00001.tfrecord.gz"],
    }
    with pytest.raises(FileExistsError, match=r"files of an earlier run"):
        outputs.prepare(overwrite=False)
    with pytest.raises(RuntimeError, match="boom"), outputs.writing(True, "f2"):
        write("spec.json", "beam-temp-train-1234/part-0", "beam-temp-train-1234/part-1")
        raise RuntimeError("boom")
    assert store == {"objects://b/logs/day1.tsv": b"theirs"}  # the earlier run and the failed one
    store["objects://b/out/notes/todo.txt"] = b"mine"
    with pytest.raises(FileExistsError, match=r"holds 1 entry .*\(notes/\)"):
        outputs.prepare(overwrite=True)
    with pytest.raises(ValueError, match=r"would match the job's own outputs"):
        outputs.check_input("objects://b/**", [])
    outputs.check_input("objects://b/logs/*", [FileMetadata("objects://b/logs/day1.tsv", 6)])
