"""The rows a study trains and evaluates on: generated (with the planted ceiling) or a real sample.

data = generated_data(GeneratedData(rows=120_000, eval_rows=20_000))
data.ceiling_auc        # the planted model's AUC on the eval rows: no model can beat it
data = real_sample("frappe", "../shared/data")   # None ceiling: the truth is unknown
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unified_embedding.metrics import roc_auc
from unified_embedding.rows import RawRows, parse_bytes, read_rows
from unified_embedding.schemas import load_schema
from unified_embedding.spec import FeatureSpec
from unified_embedding.synthetic import SyntheticConfig, generate

# Learnable config: 3 weighted values per field, signal x2 (see tests/test_learnability.py).
LEARNABLE = SyntheticConfig(seed=0, weighted_top_k=3, signal_scale=2.0)

# Real samples under the shared data folder (see its README): dataset -> file.
REAL_SAMPLES = {
    "criteo": "criteo/criteo_kaggle_head10k.tsv",
    "avazu": "avazu/avazu_train_head10k.csv",
    "frappe": "frappe/frappe_train.csv",
}


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
        "generated", spec, rows.take(index[: config.rows]), rows.take(evaluation), ceiling
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
    spec = load_schema(name)
    train, evaluation = split_rows(read_rows(spec, path), eval_fraction, seed)
    return StudyData(name, spec, train, evaluation)
