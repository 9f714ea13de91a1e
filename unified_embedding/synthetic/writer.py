"""`write_tsv`: stream generated rows (of a day, `write_rows`) to a (gzipped) Criteo TSV file,
with a report."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import io
import math
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from unified_embedding.metrics.exact import roc_auc
from unified_embedding.synthetic.batches import BLOCK_ROWS, SyntheticBatch, block_slices
from unified_embedding.synthetic.config import DEFAULT_CONFIG, SyntheticConfig
from unified_embedding.synthetic.days import DayModel
from unified_embedding.synthetic.drift import birth_days, drifting_fields, rows_with_new_values
from unified_embedding.synthetic.planted import planted_model

_WORKERS = 2  # the target machine has two cores
_AUC_MAX_ROWS = 2_000_000  # planted_auc memory bound for very large files


@dataclass(frozen=True)
class GenerateReport:
    """Summary of a `write_tsv` call. planted_auc covers the first 2,000,000 rows at most."""

    rows: int
    label_rate: float
    planted_auc: float
    seconds: float
    rows_per_second: float

    def to_dict(self) -> dict[str, int | float]:
        return dataclasses.asdict(self)


def write_tsv(
    path: str | os.PathLike[str],
    rows: int,
    config: SyntheticConfig = DEFAULT_CONFIG,
    chunk_rows: int = 8 * BLOCK_ROWS,
) -> GenerateReport:
    """Streams `rows` generated rows to `path` (gzip if it ends with .gz); returns a report.

    `chunk_rows` bounds memory (three chunks are in flight) and never changes the bytes;
    multiples of 8192 avoid generating boundary blocks twice. Chunks are rendered by two
    threads (NumPy releases the GIL) and written in order. The file appears under `path` only
    once complete.
    """
    return write_rows(path, rows, config, chunk_rows)[0]


def write_rows(
    path: str | os.PathLike[str],
    rows: int,
    config: SyntheticConfig,
    chunk_rows: int,
    day: DayModel | None = None,
) -> tuple[GenerateReport, NewValueCounts]:
    """`write_tsv`, of day `day`'s rows if given, also counting its new values."""
    if rows < 0:
        raise ValueError(f"`rows` should be non-negative. Received: `rows={rows}`")
    if chunk_rows < 1:
        raise ValueError(f"`chunk_rows` should be >= 1. Received: `chunk_rows={chunk_rows}`")
    started = time.perf_counter()
    planted_model(config)  # build once here rather than racing in every worker
    target = os.fspath(path)
    partial = target + ".partial"
    tally = _Tally()
    counts = NewValueCounts()
    with contextlib.ExitStack() as stack:
        stack.callback(_remove_if_present, partial)  # a no-op after the rename below
        raw = stack.enter_context(open(partial, "wb"))
        sink = _compressed(stack, raw) if target.endswith(".gz") else raw
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=_WORKERS))
        pending: deque[Future[_Chunk]] = deque()
        for start_row in [*range(0, rows, chunk_rows), None]:
            if start_row is not None:
                count = min(chunk_rows, rows - start_row)
                pending.append(pool.submit(_render_chunk, config, start_row, count, day))
            # Keep one chunk queued per worker; write the oldest once it is ready.
            while pending and (start_row is None or len(pending) > _WORKERS):
                chunk = pending.popleft().result()
                sink.write(chunk.text)
                tally.add(chunk.labels, chunk.probabilities)
                counts = counts + chunk.counts
        sink.close()  # finishes the gzip stream; closing is idempotent
        raw.close()  # flushed before the file becomes visible
        os.replace(partial, target)
    seconds = time.perf_counter() - started
    report = GenerateReport(
        rows=rows,
        label_rate=tally.clicks / rows if rows else math.nan,
        planted_auc=tally.planted_auc(),
        seconds=seconds,
        rows_per_second=rows / seconds,
    )
    return report, counts


@dataclass(frozen=True)
class NewValueCounts:
    """Present values in the fields that get new IDs, those born on the day written, and the
    rows holding a value new since day 1."""

    present: int = 0
    born_today: int = 0
    rows_with_new_values: int = 0

    def __add__(self, other: NewValueCounts) -> NewValueCounts:
        pairs = zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
        return NewValueCounts(*(a + b for a, b in pairs))

    @staticmethod
    def of(batch: SyntheticBatch, day: DayModel) -> NewValueCounts:
        fields = list(drifting_fields(day.config, day.drift))
        born = birth_days(batch.categories, day.config, day.drift)[:, fields]
        return NewValueCounts(
            present=int(np.count_nonzero(born)),
            born_today=int(np.count_nonzero(born == day.day)) if day.day > 1 else 0,
            rows_with_new_values=int(rows_with_new_values(batch.categories, day.config).sum()),
        )


def _compressed(stack: contextlib.ExitStack, raw: io.BufferedIOBase) -> io.BufferedIOBase:
    # mtime=0 and no file name keep .gz bytes reproducible; level 1 because zlib, not
    # generation, would otherwise dominate the run time.
    return stack.enter_context(
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1)
    )


class _Tally:
    """Clicks of every row written, and the first _AUC_MAX_ROWS rows for the planted AUC."""

    def __init__(self) -> None:
        self.clicks = self._rows = 0
        self._labels: list[np.ndarray] = []
        self._probabilities: list[np.ndarray] = []

    def add(self, labels: np.ndarray, probabilities: np.ndarray) -> None:
        self.clicks += int(labels.sum())
        keep = min(len(labels), _AUC_MAX_ROWS - self._rows)
        self._rows += keep
        self._labels.append(labels[:keep])
        self._probabilities.append(probabilities[:keep])

    def planted_auc(self) -> float:
        labels = np.concatenate(self._labels) if self._labels else np.zeros(0, np.int8)
        if not 0 < labels.sum() < labels.size:
            return math.nan
        return roc_auc(labels, np.concatenate(self._probabilities))


@dataclass(frozen=True, eq=False)
class _Chunk:
    text: bytes
    labels: np.ndarray
    probabilities: np.ndarray
    counts: NewValueCounts


def _render_chunk(
    config: SyntheticConfig, start_row: int, rows: int, day: DayModel | None
) -> _Chunk:
    """Worker task: rows [start_row, start_row + rows) as TSV bytes, labels, probabilities
    and (of a day) new value counts."""
    parts = list(block_slices(config, start_row, rows, day))  # formatted unconcatenated: cheaper
    counts = NewValueCounts()
    if day is not None:
        for part in parts:
            counts = counts + NewValueCounts.of(part, day)
    return _Chunk(
        b"".join(part.to_tsv_bytes() for part in parts),
        np.concatenate([part.labels for part in parts]),
        np.concatenate([part.probabilities for part in parts]),
        counts,
    )


def _remove_if_present(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
