"""Feature values with Criteo-like distributions: Zipf-ranked categories, lognormal counts."""

from __future__ import annotations

import functools

import numpy as np

from unified_embedding.synthetic.config import CATEGORY_FIELDS, INTEGER_FIELDS, SyntheticConfig

# I-field counts are lognormal around Criteo-like medians (I5 is in the thousands there too).
_INTEGER_MEDIANS = np.array([1, 2, 6, 4, 2800, 30, 3, 7, 37, 1, 1, 1, 4], dtype=np.float64)
_INTEGER_SIGMAS = np.array(
    [1.0, 1.2, 1.2, 1.0, 1.5, 1.3, 1.2, 1.0, 1.2, 0.8, 1.0, 1.0, 1.1], dtype=np.float64
)
_INTEGER_LOCS = np.log1p(_INTEGER_MEDIANS)
_INTEGER_CAP = 10**8 - 1  # the largest value two 4-digit lookups can print
_I2_NEGATIVE_RATE = 0.03  # real Criteo I2 has a few values in -3..-1

_GUIDE_BUCKETS = 2**14


@functools.lru_cache(maxsize=64)
def _zipf_tables(cardinality: int, exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-CDF tables: (cardinality,) cumulative probabilities and a guide table.

    guide[b] is the rank of u = b / _GUIDE_BUCKETS. Rank is monotone in u, so when
    guide[b] == guide[b + 1] every u in bucket b has that rank and needs no binary search;
    that resolves most draws and halves the sampling time.
    """
    cdf = np.cumsum(np.arange(1, cardinality + 1, dtype=np.float64) ** -exponent)
    cdf /= cdf[-1]
    edges = np.arange(_GUIDE_BUCKETS + 1) / _GUIDE_BUCKETS
    guide = np.minimum(np.searchsorted(cdf, edges, side="right"), cardinality - 1)
    guide = guide.astype(np.int32)
    for table in (cdf, guide):
        table.flags.writeable = False  # shared through the cache
    return cdf, guide


def zipf_ranks(uniforms: np.ndarray, cardinality: int, exponent: float) -> np.ndarray:
    """Zipf ranks (0 = most frequent) by inverse CDF of uniforms in [0, 1)."""
    cdf, guide = _zipf_tables(cardinality, exponent)
    bucket = (uniforms * _GUIDE_BUCKETS).astype(np.intp)  # exact: the bucket count is 2**k
    ranks = guide[bucket]
    ambiguous = np.flatnonzero(ranks != guide[bucket + 1])
    # Searching in increasing order walks the large cdf cache-friendly (~1.5x faster).
    ambiguous = ambiguous[np.argsort(uniforms[ambiguous])]
    # side="right" maps u in [cdf[r-1], cdf[r]) to rank r; u < 1 = cdf[-1] keeps r in range.
    ranks[ambiguous] = np.searchsorted(cdf, uniforms[ambiguous], side="right")
    return ranks


def sample_features(
    rng: np.random.Generator, config: SyntheticConfig, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 13) float integers with NaN, (rows, 26) int64 value ids with -1."""
    uniforms = rng.random((len(CATEGORY_FIELDS), rows))  # field-major: contiguous per field
    categories = np.empty((rows, len(CATEGORY_FIELDS)), dtype=np.int64)
    for f, cardinality in enumerate(config.cardinalities):
        categories[:, f] = zipf_ranks(uniforms[f], cardinality, config.zipf_exponent)
    category_missing = np.asarray(config.category_missing_rates)
    categories[rng.random((rows, len(CATEGORY_FIELDS))) < category_missing] = -1

    normals = rng.standard_normal((rows, len(INTEGER_FIELDS)))
    integers = np.floor(np.exp(_INTEGER_LOCS + _INTEGER_SIGMAS * normals)) - 1.0
    np.clip(integers, 0.0, _INTEGER_CAP, out=integers)
    negative = rng.random(rows) < _I2_NEGATIVE_RATE
    integers[:, 1] = np.where(
        negative, -rng.integers(1, 4, rows).astype(np.float64), integers[:, 1]
    )
    integer_missing = np.asarray(config.integer_missing_rates)
    integers[rng.random((rows, len(INTEGER_FIELDS))) < integer_missing] = np.nan
    return integers, categories


def integer_features(integers: np.ndarray) -> np.ndarray:
    """(n, 13) standardized log1p counts, 0 where missing (so missing adds no signal)."""
    z = (np.log1p(np.maximum(integers, 0.0)) - _INTEGER_LOCS) / _INTEGER_SIGMAS
    return np.nan_to_num(z, nan=0.0)
