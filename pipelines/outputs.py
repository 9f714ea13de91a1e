"""The output directory a job owns: what it may write there, its manifest, and the rules that
keep a job from deleting or reading what it did not write.

    outputs = JobOutputs("preprocess", "out/", ("spec.json", "train-*.tfrecord.gz", ...))
    outputs.check_input("logs/*.tsv", files)   # input and output must not overlap
    with outputs.writing(overwrite=False, fingerprint=spec.fingerprint):
        ...                                    # run the pipeline
    # out/manifest.json now names every file the job wrote

- A directory holding anything that no manifest names is refused, with or without
  `--overwrite`: a job never deletes what it did not write. A new or empty one is fine.
- `--overwrite` removes exactly the files an earlier manifest names, then the manifest.
- The manifest is written once the pipeline has succeeded, before the job's own checks (the
  dead-row limit, an empty input) can fail it: those outputs stay, the user reads them.
- A run that fails removes what it wrote (Beam's `beam-temp-*` folders included): the
  directory is left empty, and the next run needs no `--overwrite`.

Paths go through Beam's FileSystems, so the rules hold on remote file systems too.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from apache_beam.io.filesystem import FileMetadata
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from pipelines.globs import globs_overlap, literal
from unified_embedding.contract.artifacts import MANIFEST_FILE

# Beam's file sinks stage shards in `<dir>/beam-temp-<prefix>-<uuid>/` (FileBasedSink).
BEAM_TEMP = "beam-temp-*"
_SHOWN = 5  # names quoted in an error


def is_local(path: str) -> bool:
    return isinstance(FileSystems.get_filesystem(path), LocalFileSystem)


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _local_forms(path: str) -> set[str]:
    """A local path as given (absolute) and with its links resolved."""
    return {os.path.abspath(path), os.path.realpath(path)}


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _shown(names: Sequence[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


@dataclass(frozen=True)
class Manifest:
    """`manifest.json`: the files (names relative to the directory) a job wrote there."""

    job: str
    spec_fingerprint: str
    files: tuple[str, ...]

    def to_json(self) -> str:
        document = {
            "job": self.job,
            "spec_fingerprint": self.spec_fingerprint,
            "files": list(self.files),
        }
        return json.dumps(document, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, path: str) -> Manifest:
        """Refuses anything but a manifest naming plain files of its own directory."""
        try:
            document: Any = json.loads(text)
            files = tuple(document["files"])
            manifest = cls(str(document["job"]), str(document["spec_fingerprint"]), files)
        except (ValueError, KeyError, TypeError):
            manifest = None
        plain = manifest is not None and all(
            isinstance(f, str)
            and f
            and "/" not in f
            and "\\" not in f
            and f not in (".", "..", MANIFEST_FILE)
            for f in manifest.files
        )
        if manifest is None or not plain:
            raise ValueError(
                f"`{path}` is not a manifest of a `ue` job (a JSON object with `job`, "
                f"`spec_fingerprint` and `files`, plain file names): remove it by hand "
                f"if the directory is yours"
            )
        return manifest


@dataclass(frozen=True)
class JobOutputs:
    """What job `job` writes under `directory`: files whose names match `patterns` (fnmatch
    globs of names, e.g. `train-*.tfrecord.gz`; `*` stands for Beam's shard numbers)."""

    job: str
    directory: str
    patterns: tuple[str, ...]

    @property
    def root(self) -> str:
        return self.directory.rstrip("/") or "/"

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def check_input(self, pattern: str, files: Sequence[FileMetadata]) -> None:
        """Refuses an input that overlaps the output, before anything is touched: a matched
        file inside the directory, or a glob that would match a file the job may write."""
        local = is_local(self.root) and is_local(pattern)
        roots = _local_forms(self.root) if local else {self.root}
        inside = [
            f.path
            for f in files
            if any(
                _under(p, r) for p in (_local_forms(f.path) if local else {f.path}) for r in roots
            )
        ]
        if inside:
            raise ValueError(
                f"`--input {pattern}` reads {_count(len(inside), 'file', 'files')} inside "
                f"`--output {self.directory}` ({_shown(inside)}): a job's input must lie outside "
                f"its output directory"
            )
        globs = _local_forms(pattern) if local else {pattern}
        for name in (*self.patterns, MANIFEST_FILE, f"{BEAM_TEMP}/*"):
            for root in roots:
                written = f"{literal(root.rstrip('/'))}/{name}"
                if any(globs_overlap(glob, written) for glob in globs):
                    raise ValueError(
                        f"`--input {pattern}` would match the job's own outputs "
                        f"(`{root.rstrip('/')}/{name}`): narrow the glob or choose an "
                        f"`--output` it cannot match"
                    )

    def entries(self) -> list[str]:
        """The names of the directory's entries (files and folders; a folder's name ends in
        `/` on a file system without folders)."""
        if is_local(self.root):
            if not os.path.lexists(self.root):
                return []
            if not os.path.isdir(self.root):
                raise ValueError(f"`--output {self.directory}` should be a directory: it is a file")
            return sorted(os.listdir(self.root))
        prefix = self.root.rstrip("/") + "/"
        found = FileSystems.match([prefix + "**"])[0].metadata_list
        names = set()
        for m in found:
            rest = m.path[len(prefix) :]
            first, nested, _ = rest.partition("/")
            names.add(first + "/" if nested else first)
        return sorted(n for n in names if n and n != "/")

    def manifest(self) -> Manifest | None:
        path = self.path(MANIFEST_FILE)
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path) as f:
            return Manifest.from_json(f.read().decode("utf-8", errors="replace"), path)

    def prepare(self, overwrite: bool) -> None:
        """Makes the directory ready: created if absent; refused if it holds anything no
        manifest names, or an earlier run's files without `overwrite` (which removes exactly
        those files, then the manifest)."""
        names = self.entries()
        if not names:
            if not FileSystems.exists(self.root):
                FileSystems.mkdirs(self.root)
            return
        manifest = self.manifest() if MANIFEST_FILE in names else None
        owned = {MANIFEST_FILE, *(manifest.files if manifest else ())}
        foreign = [n for n in names if n not in owned]
        if foreign:
            killed = any(fnmatch.fnmatchcase(n.rstrip("/"), BEAM_TEMP) for n in foreign)
            raise FileExistsError(
                f"`--output {self.directory}` holds {_count(len(foreign), 'entry', 'entries')} "
                f"that no {MANIFEST_FILE} names ({_shown(foreign)}): a job never removes what "
                f"it did not write; choose a new or empty directory, or move them away"
                + (" (beam-temp-* folders are left by a job that was killed)" if killed else "")
            )
        assert manifest is not None
        if not overwrite:
            raise FileExistsError(
                f"`--output {self.directory}` holds "
                f"{_count(len(manifest.files), 'file', 'files')} of an earlier run "
                f"(`ue {manifest.job}`, listed in {MANIFEST_FILE}): choose another directory or "
                f"pass --overwrite to replace them"
            )
        earlier = [self.path(n) for n in manifest.files if n in names]
        if earlier:
            FileSystems.delete(earlier)
        FileSystems.delete([self.path(MANIFEST_FILE)])  # last: an interrupted removal resumes
        logging.info("%s: removed the %d files of the earlier run", self.directory, len(earlier))

    def written(self) -> list[str]:
        """The names in the directory that this job writes."""
        return [n for n in self.entries() if any(fnmatch.fnmatchcase(n, p) for p in self.patterns)]

    def seal(self, fingerprint: str) -> Manifest:
        """Writes the manifest of the files the job wrote (Beam's staging folders, left only
        by a runner that failed to remove them, are removed first)."""
        self._remove([n for n in self.entries() if fnmatch.fnmatchcase(n.rstrip("/"), BEAM_TEMP)])
        manifest = Manifest(self.job, fingerprint, tuple(self.written()))
        with FileSystems.create(self.path(MANIFEST_FILE)) as f:
            f.write(manifest.to_json().encode("utf-8"))
        return manifest

    def discard(self) -> None:
        """After a failed run (which started in an empty directory): removes what it wrote,
        Beam's staging folders included."""
        ours = (*self.patterns, BEAM_TEMP, MANIFEST_FILE)
        self._remove(
            [n for n in self.entries() if any(fnmatch.fnmatchcase(n.rstrip("/"), p) for p in ours)]
        )

    def _remove(self, names: Sequence[str]) -> None:
        paths = []
        for name in names:
            if name.endswith("/"):  # a folder of a file system without folders: its objects
                found = FileSystems.match([self.path(name) + "**"])[0].metadata_list
                paths += [m.path for m in found]
            else:
                paths.append(self.path(name))  # a local folder is removed with its files
        if paths:
            FileSystems.delete(paths)

    @contextmanager
    def writing(self, overwrite: bool, fingerprint: str | Callable[[], str]) -> Iterator[None]:
        """`prepare`, then the body; `seal` when it succeeds (with `fingerprint`, or what it
        returns then: a job may know its spec only once it ran), `discard` when it (or `seal`)
        raises."""
        self.prepare(overwrite)
        try:
            yield
            self.seal(fingerprint if isinstance(fingerprint, str) else fingerprint())
        except BaseException:
            try:
                self.discard()
            except Exception as e:  # the job's own error matters more
                logging.warning("could not remove the failed run's files in %s: %s", self.root, e)
            raise
