"""Every row accounted for, in both jobs: rows read, kept (valid when preprocessing, scored when
scoring) and dead-lettered by reason, in total and per matched input file, summed over blocks
and workers by one CombineFn, checked before `stats.json` is written, and listed there.

    counts = RowCounts.of(checked)            # one validated block
    counts.merge(other)                       # any grouping: MergeFn(RowCounts) in a pipeline
    counts.document("rows_valid", read)       # stats.json's counts, after the checks below
    read = FilesRead(matched=("logs/a.tsv",), lines={"logs/a.tsv": 1000})   # from the reader

The blocks' rows per file ride in the jobs' mergeable statistics; the reader's lines per file
(`read.FILES_READ`, one report per byte range, also for a file without a line) are summed by
their own small CombineFn: merging them into the statistics' stream would stop Beam from
combining those before the shuffle. A file matched but never reported, reported but never
matched, or whose counts differ fails the job, naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from unified_embedding.rows.validation import REASONS, CheckedBlock

_SHOWN = 5  # files a person's summary names


@dataclass
class FileRows:
    """Rows of one input file that validation `checked`, and of those `kept` (valid when
    preprocessing, scored when scoring) or `dead` (dead-lettered)."""

    checked: int = 0
    kept: int = 0
    dead: int = 0

    def add(self, other: FileRows) -> FileRows:
        self.checked += other.checked
        self.kept += other.kept
        self.dead += other.dead
        return self


def merge_files(into: dict[str, FileRows], other: Mapping[str, FileRows]) -> None:
    """Adds `other`'s per-file counts into `into` (never sharing `other`'s objects)."""
    for path, rows in other.items():
        into.setdefault(path, FileRows()).add(rows)


@dataclass(frozen=True)
class FilesRead:
    """The files the job was given (`matched`), the lines the reader handed on per file, and
    each file's header columns the schema does not have (never read; `read.check_headers`)."""

    matched: tuple[str, ...]
    lines: Mapping[str, int]
    extra_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


class MergeFilesReadFn(beam.CombineFn):
    """The reader's (file, lines) reports -> lines per file."""

    def create_accumulator(self) -> dict[str, int]:
        return {}

    def add_input(self, acc: dict[str, int], report: tuple[str, int]) -> dict[str, int]:
        path, lines = report
        acc[path] = acc.get(path, 0) + lines
        return acc

    def merge_accumulators(self, accumulators: Iterable[dict[str, int]]) -> dict[str, int]:
        total: dict[str, int] = {}
        for acc in accumulators:
            for path, lines in acc.items():
                total[path] = total.get(path, 0) + lines
        return total

    def extract_output(self, acc: dict[str, int]) -> dict[str, int]:
        return acc


def check_files(files: Mapping[str, FileRows], read: FilesRead, kept: str) -> None:
    """Raises RuntimeError naming the first file matched but never read, read but never
    matched, or whose rows do not add up (lines read = checked = kept + dead); `kept` names
    the kept rows in the message (`valid`, `scored`)."""
    unread = [p for p in read.matched if p not in read.lines]
    if unread:
        raise RuntimeError(
            f"{len(unread)} matched files were never read (e.g. {unread[0]}): rows lost"
        )
    stray = sorted((set(read.lines) | set(files)) - set(read.matched))
    if stray:
        raise RuntimeError(f"{len(stray)} files were read but never matched (e.g. {stray[0]})")
    for path in sorted(read.matched):
        r = files.get(path, FileRows())
        if not read.lines[path] == r.checked == r.kept + r.dead:
            raise RuntimeError(
                f"rows lost in {path}: {read.lines[path]} read, {r.checked} checked, "
                f"{r.kept} {kept} + {r.dead} dead-lettered"
            )


def files_document(
    files: Mapping[str, FileRows], kept: str, read: FilesRead | None = None
) -> dict[str, dict[str, Any]]:
    """stats.json's `files`: per file, by path, rows read, `kept` (`rows_valid`,
    `rows_scored`) and dead, and the header's `extra_columns` if it has any; every matched
    file, those without a row included."""
    paths = sorted(set(files) | set(read.matched if read else ()))
    extra = read.extra_columns if read else {}
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        r = files.get(path, FileRows())
        out[path] = {"rows_read": r.checked, kept: r.kept, "rows_dead": r.dead}
        if extra.get(path):
            out[path]["extra_columns"] = list(extra[path])
    return out


def notable_files(files: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A few lines for a person about stats.json's `files`: those with dead rows (most
    first) and those without a row, at most _SHOWN, and how many more there are."""
    dead = sorted(
        (p for p, f in files.items() if f["rows_dead"]), key=lambda p: (-files[p]["rows_dead"], p)
    )
    empty = sorted(p for p, f in files.items() if not f["rows_read"])
    lines = [
        *(f"  {files[p]['rows_dead']:,} of {files[p]['rows_read']:,} rows dead: {p}" for p in dead),
        *(f"  no row: {p}" for p in empty),
    ]
    if len(lines) > _SHOWN:
        lines = [*lines[:_SHOWN], f"  ... {len(lines) - _SHOWN} more (stats.json `files`)"]
    return lines


def _reasons() -> dict[str, int]:
    return dict.fromkeys(REASONS, 0)


@dataclass
class RowCounts:
    """Rows of one block, or of many merged: `read`, `kept` (valid or scored) and `dead` by
    reason, in total and per input file."""

    read: int = 0
    kept: int = 0
    dead: dict[str, int] = field(default_factory=_reasons)
    files: dict[str, FileRows] = field(default_factory=dict)

    @classmethod
    def of(cls, checked: CheckedBlock) -> RowCounts:
        """A validated block's counts: its valid rows are the ones kept."""
        kept, dead = len(checked.rows), len(checked.dead)
        return cls(
            read=checked.lines,
            kept=kept,
            dead=checked.dead_counts(),
            files={checked.block.source: FileRows(checked.lines, kept, dead)},
        )

    def merge(self, other: RowCounts) -> RowCounts:
        """Adds `other` (left alone) into these counts and returns them."""
        self.read += other.read
        self.kept += other.kept
        for reason, count in other.dead.items():
            self.dead[reason] = self.dead.get(reason, 0) + count
        merge_files(self.files, other.files)
        return self

    def check(self, kept: str, read: FilesRead | None = None) -> None:
        """Raises RuntimeError unless every row read was kept or dead-lettered, and, given what
        the reader `read`, each matched file was read in full (`check_files`). `kept` names the
        kept rows in the message (`valid`, `scored`)."""
        dead = sum(self.dead.values())
        if self.kept + dead != self.read:
            raise RuntimeError(
                f"rows lost: {self.read} read but {self.kept} {kept} + {dead} dead-lettered"
            )
        if read is not None:
            check_files(self.files, read, kept)

    def document(self, kept: str, read: FilesRead | None = None) -> dict[str, Any]:
        """stats.json's counts after `check`: `rows_read`, `rows_<kept>`, `rows_dead`,
        `dead_by_reason` and `files`."""
        self.check(kept, read)
        return {
            "rows_read": self.read,
            f"rows_{kept}": self.kept,
            "rows_dead": sum(self.dead.values()),
            "dead_by_reason": {r: self.dead.get(r, 0) for r in REASONS},
            "files": files_document(self.files, f"rows_{kept}", read),
        }


class MergeFn(beam.CombineFn):
    """Block statistics of one type (any with `merge(other) -> self`, other left alone) ->
    their sum: a runner adds blocks on each worker, then merges the workers' sums."""

    def __init__(self, empty: Callable[[], Any]) -> None:
        self._empty = empty  # a fresh, empty instance

    def create_accumulator(self) -> Any:
        return self._empty()

    def add_input(self, acc: Any, stats: Any) -> Any:
        return acc.merge(stats)

    def merge_accumulators(self, accumulators: Iterable[Any]) -> Any:
        total = self._empty()
        for acc in accumulators:
            total.merge(acc)
        return total

    def extract_output(self, acc: Any) -> Any:
        return acc
