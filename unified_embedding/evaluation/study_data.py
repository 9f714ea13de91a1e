"""The rows a study trains and evaluates on: generated (with the planted ceiling) or real files.

data = generated_data(GeneratedData(rows=120_000, eval_rows=20_000))
data.ceiling_auc        # the planted model's AUC on the eval rows: no model can beat it
data = real_sample("frappe", "../shared/data")   # None ceiling: the truth is unknown
data = read_dataset(DatasetSource("mine", "logs/*.csv.gz", "my_schema.json"))

`load_datasets` reads a notebook's `datasets` parameter (its format: `dataset_entries.py`): the
user's files with their schema, or a shared sample by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.evaluation.dataset_entries import (
    GENERATED,
    REAL_SAMPLES,
    DatasetError,
    DatasetSource,
    dataset_sources,
)
from unified_embedding.metrics.exact import roc_auc
from unified_embedding.rows.reader import RawRows, concat_rows, parse_bytes, read_rows
from unified_embedding.rows.textfile import CorruptInput
from unified_embedding.synthetic import SyntheticConfig, generate

# Learnable config: 3 weighted values per field, signal x2 (tests/.../models/test_learnability.py).
LEARNABLE = SyntheticConfig(seed=0, weighted_top_k=3, signal_scale=2.0)


@dataclass(frozen=True)
class StudyData:
    """Train and eval rows of one dataset, with the ceiling AUC when it is known."""

    name: str
    spec: FeatureSpec
    train: RawRows
    evaluation: RawRows
    ceiling_auc: float | None = None


@dataclass(frozen=True)
class GeneratedData:
    """Criteo-format rows from `synthetic`: the first `rows` train, the next `eval_rows` eval."""

    rows: int = 120_000
    eval_rows: int = 20_000
    synthetic: SyntheticConfig = field(default_factory=lambda: LEARNABLE)

    def __post_init__(self) -> None:
        for name in ("rows", "eval_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` should be >= 1. Received: `{getattr(self, name)}`")


def generated_data(config: GeneratedData) -> StudyData:
    """Generated rows; the ceiling is the planted model's AUC on the same eval rows."""
    spec = load_schema("criteo")
    batch = generate(config.rows + config.eval_rows, config.synthetic)
    rows = parse_bytes(spec, batch.to_tsv_bytes())
    index = np.arange(len(rows))
    evaluation = index[config.rows :]
    ceiling = roc_auc(batch.labels[evaluation], batch.probabilities[evaluation])
    return StudyData(
        GENERATED, spec, rows.take(index[: config.rows]), rows.take(evaluation), ceiling
    )


def split_rows(rows: RawRows, eval_fraction: float, seed: int) -> tuple[RawRows, RawRows]:
    """A seeded random (train, eval) split; eval gets round(eval_fraction * rows) rows."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(
            f"`eval_fraction` should be in (0, 1). Received: `eval_fraction={eval_fraction}`"
        )
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = len(rows) - round(eval_fraction * len(rows))
    return rows.take(np.sort(order[:cut])), rows.take(np.sort(order[cut:]))


def real_sample(
    name: str, data_dir: str | Path, eval_fraction: float = 0.2, seed: int = 0
) -> StudyData | None:
    """A real sample from `data_dir` (e.g. `../shared/data`); None when the file is absent."""
    if name not in REAL_SAMPLES:
        raise ValueError(f"`name` should be one of {sorted(REAL_SAMPLES)}. Received: `{name}`")
    path = Path(data_dir) / REAL_SAMPLES[name]
    if not path.is_file():
        return None
    return read_dataset(DatasetSource(name, str(path), name, eval_fraction), seed)


def read_dataset(source: DatasetSource, seed: int = 0, train_rows: int = 0) -> StudyData:
    """Every row of `source`'s files, split (seeded) into train and eval; `train_rows` > 0 keeps
    only the first that many train rows (small runs). A row that does not fit the schema
    raises DatasetError naming the file, the line and the field."""
    spec = load_schema(source.schema)
    try:
        rows = concat_rows([read_rows(spec, path) for path in source.files()])
    except (ValueError, CorruptInput) as e:
        raise DatasetError(
            f"the rows of dataset `{source.name}` do not fit `schema={source.schema!r}`: {e}"
        ) from None
    train, evaluation = split_rows(rows, source.eval_fraction, seed)
    if train_rows:
        train = train.take(np.arange(min(train_rows, len(train))))
    return StudyData(source.name, spec, train, evaluation)


class LoadedDatasets(NamedTuple):
    data: list[StudyData]
    skipped: list[str]  # shared samples that were not found


def load_datasets(
    entries: Sequence[Any], shared_data: str | Path, train_rows: int = 0
) -> LoadedDatasets:
    """A notebook's `datasets` parameter read (`dataset_entries`): every entry checked first,
    then each source read (`read_dataset`)."""
    sources, skipped = dataset_sources(entries, shared_data)
    return LoadedDatasets([read_dataset(s, train_rows=train_rows) for s in sources], skipped)
