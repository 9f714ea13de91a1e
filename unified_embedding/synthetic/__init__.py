"""Criteo-format click data drawn from a planted logistic model with known parameters.

Each row is `label, I1..I13, C1..C26`, tab-separated. C-field values follow a Zipf law over a
per-field vocabulary (10 to 1,000,000 values); the label is Bernoulli(sigmoid(logit)) where the
logit has first-order, pairwise (FM-style) and three-way terms. Only the `weighted_top_k` most
frequent values of each field carry weight, so a model trained on a few hundred thousand rows
can recover most of the signal, while the long tail exercises hashing and collisions.

Rows are produced in fixed blocks of `BLOCK_ROWS`, each with its own RNG derived from
`(seed, block index)`, so the output depends only on `(config, rows)` - never on chunking.

Days that drift (`ue generate --days N`): day 1 is the output above; each later day has new
IDs in the high-cardinality fields, a moved base click rate and rotated planted effects, all
set by `DriftConfig` and drawn from the seed, so day d is a function of (config, drift, d).

    config.py     columns (from `schemas.criteo()`), missing rates, `SyntheticConfig`
    sampler.py    feature values: Zipf-ranked categories, lognormal counts
    planted.py    the planted logistic model and its calibrated bias
    drift.py      `DriftConfig`; which ids are new since day 1 (`new_value_mask`, ...)
    days.py       the planted model of each day, and the new IDs drawn into its rows
    batches.py    `generate`, `generate_day`: rows as arrays, cut from fixed seeded blocks
    text.py       Criteo TSV bytes of rows, and value ids back from the text (`category_ids`)
    writer.py     `write_tsv`: streams rows to a (gzipped) file
    day_files.py  `write_days`: one file per day into a folder
    cli.py        `ue generate`
"""

from unified_embedding.synthetic.batches import BLOCK_ROWS, SyntheticBatch, generate, generate_day
from unified_embedding.synthetic.config import (
    CATEGORY_FIELDS,
    COLUMNS,
    DEFAULT_CATEGORY_MISSING_RATES,
    DEFAULT_CONFIG,
    DEFAULT_INTEGER_MISSING_RATES,
    INTEGER_FIELDS,
    LABEL_FIELD,
    SyntheticConfig,
)
from unified_embedding.synthetic.day_files import DayReport, day_path, write_days
from unified_embedding.synthetic.days import DayModel, day_model
from unified_embedding.synthetic.drift import (
    DEFAULT_DRIFT,
    DriftConfig,
    birth_days,
    new_id_range,
    new_value_mask,
    rows_with_new_values,
)
from unified_embedding.synthetic.planted import PlantedModel, planted_model
from unified_embedding.synthetic.text import category_ids
from unified_embedding.synthetic.writer import GenerateReport, write_tsv

__all__ = [
    "BLOCK_ROWS",
    "CATEGORY_FIELDS",
    "COLUMNS",
    "DEFAULT_CATEGORY_MISSING_RATES",
    "DEFAULT_CONFIG",
    "DEFAULT_DRIFT",
    "DEFAULT_INTEGER_MISSING_RATES",
    "INTEGER_FIELDS",
    "LABEL_FIELD",
    "DayModel",
    "DayReport",
    "DriftConfig",
    "GenerateReport",
    "PlantedModel",
    "SyntheticBatch",
    "SyntheticConfig",
    "birth_days",
    "category_ids",
    "day_model",
    "day_path",
    "generate",
    "generate_day",
    "new_id_range",
    "new_value_mask",
    "planted_model",
    "rows_with_new_values",
    "write_days",
    "write_tsv",
]
