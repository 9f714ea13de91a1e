"""What the synthetic data is: its columns (the Criteo layout `schemas.criteo()` owns), missing
rates and `SyntheticConfig`, of which the planted model and every row are a function."""

from __future__ import annotations

from dataclasses import dataclass

from unified_embedding.contract.schemas import criteo
from unified_embedding.runtime.flags import option

_CRITEO = criteo()
LABEL_FIELD = _CRITEO.label
INTEGER_FIELDS: tuple[str, ...] = tuple(f.name for f in _CRITEO.numeric_fields)
CATEGORY_FIELDS: tuple[str, ...] = tuple(f.name for f in _CRITEO.categorical_fields)
COLUMNS: tuple[str, ...] = _CRITEO.input_format.columns

# Missing rates shaped like real Criteo (capped at 0.4): a few sparse fields, most complete.
# fmt: off
DEFAULT_INTEGER_MISSING_RATES: tuple[float, ...] = (
    0.4, 0.0, 0.2, 0.2, 0.03, 0.2, 0.04, 0.0, 0.04, 0.4, 0.04, 0.4, 0.2,
)
DEFAULT_CATEGORY_MISSING_RATES: tuple[float, ...] = (
    0.0, 0.0, 0.03, 0.03, 0.0, 0.12, 0.0, 0.0, 0.0, 0.0, 0.0, 0.03, 0.0,
    0.0, 0.0, 0.03, 0.0, 0.0, 0.4, 0.4, 0.03, 0.4, 0.0, 0.03, 0.4, 0.4,
)
# fmt: on

# Seed streams: the planted model, its bias calibration and the rows draw independently; so do
# each later day's drift of the model and its rows (day 1 is the rows of ROW_STREAM).
MODEL_STREAM, CALIBRATION_STREAM, ROW_STREAM, DRIFT_STREAM, DAY_ROW_STREAM = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SyntheticConfig:
    """What to generate. Everything, including the planted model, is a function of this.

    Attributes:
      seed: non-negative seed for the planted model and the rows.
      min_cardinality: vocabulary size of C1; C1..C26 are spread log-uniformly up to
        `max_cardinality` (see `cardinalities`).
      max_cardinality: vocabulary size of C26.
      zipf_exponent: P(value of rank r) ~ r^-exponent; 1.1 gives Criteo-like long tails.
      weighted_top_k: only ranks < min(cardinality, k) carry weight in the planted model.
      latent_dim: size of the interaction latent vectors.
      label_rate: target click rate; the planted bias is calibrated to it.
      signal_scale: multiplies every non-bias weight; 0 makes labels pure noise.
      integer_missing_rates: per I field probability of an empty value.
      category_missing_rates: per C field probability of an empty value.
    """

    seed: int = option(0, "random seed of the planted model and the rows")
    min_cardinality: int = 10
    max_cardinality: int = 1_000_000
    zipf_exponent: float = 1.1
    weighted_top_k: int = option(
        200, "values per field that carry weight in the planted model (fewer: easier to learn)"
    )
    latent_dim: int = 4
    label_rate: float = 0.25
    signal_scale: float = option(1.0, "multiplies the planted weights (0: labels are noise)")
    integer_missing_rates: tuple[float, ...] = DEFAULT_INTEGER_MISSING_RATES
    category_missing_rates: tuple[float, ...] = DEFAULT_CATEGORY_MISSING_RATES

    def __post_init__(self) -> None:
        checks: list[tuple[str, object, bool, str]] = [
            ("seed", self.seed, self.seed >= 0, "be non-negative"),
            ("min_cardinality", self.min_cardinality, self.min_cardinality >= 2, "be >= 2"),
            (
                "max_cardinality",
                self.max_cardinality,
                self.max_cardinality >= self.min_cardinality,
                "be >= `min_cardinality`",
            ),
            ("zipf_exponent", self.zipf_exponent, self.zipf_exponent > 0, "be positive"),
            ("weighted_top_k", self.weighted_top_k, self.weighted_top_k >= 1, "be >= 1"),
            ("latent_dim", self.latent_dim, self.latent_dim >= 1, "be >= 1"),
            ("label_rate", self.label_rate, 0 < self.label_rate < 1, "be in (0, 1)"),
            ("signal_scale", self.signal_scale, self.signal_scale >= 0, "be non-negative"),
        ]
        for name, rates, count in (
            ("integer_missing_rates", self.integer_missing_rates, len(INTEGER_FIELDS)),
            ("category_missing_rates", self.category_missing_rates, len(CATEGORY_FIELDS)),
        ):
            valid = len(rates) == count and all(0 <= r < 1 for r in rates)
            checks.append((name, rates, valid, f"have {count} values in [0, 1)"))
        for name, value, ok, requirement in checks:
            if not ok:
                raise ValueError(f"`{name}` should {requirement}. Received: `{name}={value!r}`")

    @property
    def cardinalities(self) -> tuple[int, ...]:
        """Vocabulary size of C1..C26, log-uniform from min to max (both included exactly)."""
        last = len(CATEGORY_FIELDS) - 1
        ratio = self.max_cardinality / self.min_cardinality
        return tuple(round(self.min_cardinality * ratio ** (i / last)) for i in range(last + 1))

    @property
    def top_k(self) -> tuple[int, ...]:
        """Number of weighted (learnable) values per C field."""
        return tuple(min(c, self.weighted_top_k) for c in self.cardinalities)


DEFAULT_CONFIG = SyntheticConfig()
