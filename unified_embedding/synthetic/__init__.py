"""Criteo-format click data drawn from a planted logistic model with known parameters.

Each row is `label, I1..I13, C1..C26`, tab-separated. C-field values follow a Zipf law over a
per-field vocabulary (10 to 1,000,000 values); the label is Bernoulli(sigmoid(logit)) where the
logit has first-order, pairwise (FM-style) and three-way terms. Only the `weighted_top_k` most
frequent values of each field carry weight, so a model trained on a few hundred thousand rows
can recover most of the signal, while the long tail exercises hashing and collisions.

Rows are produced in fixed blocks of `BLOCK_ROWS`, each with its own RNG derived from
`(seed, block index)`, so the output depends only on `(config, rows)` - never on chunking.

    config.py   columns (from `schemas.criteo()`), missing rates, `SyntheticConfig`
    sampler.py  feature values: Zipf-ranked categories, lognormal counts
    planted.py  the planted logistic model and its calibrated bias
    batches.py  `generate`: rows as arrays, cut from fixed seeded blocks
    text.py     Criteo TSV bytes of rows
    writer.py   `write_tsv`: streams rows to a (gzipped) file
    cli.py      `ue generate`
"""

from unified_embedding.synthetic.batches import BLOCK_ROWS, SyntheticBatch, generate
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
from unified_embedding.synthetic.planted import PlantedModel, planted_model
from unified_embedding.synthetic.writer import GenerateReport, write_tsv

__all__ = [
    "BLOCK_ROWS",
    "CATEGORY_FIELDS",
    "COLUMNS",
    "DEFAULT_CATEGORY_MISSING_RATES",
    "DEFAULT_CONFIG",
    "DEFAULT_INTEGER_MISSING_RATES",
    "INTEGER_FIELDS",
    "LABEL_FIELD",
    "GenerateReport",
    "PlantedModel",
    "SyntheticBatch",
    "SyntheticConfig",
    "generate",
    "planted_model",
    "write_tsv",
]
