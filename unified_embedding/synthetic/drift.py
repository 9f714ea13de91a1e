"""How generated days drift (`DriftConfig`), and which value ids are new since day 1.

Day 1 is the undrifted generator's output. On each later day d:

- new IDs: in every C field with at least `new_id_min_cardinality` values, `new_ids_per_day`
  values are born. They take `new_id_share` of the day's present values in that field, and a
  value born on day b still takes `new_id_share * new_id_retention ** (d - b)` on day d. Within
  one day's births values are Zipf-ranked like the field's own, and the first `weighted_top_k`
  carry planted effects of their own (first-order, and latent where the field interacts).
- base click rate: the planted bias moves by `ctr_drift` per day, plus `ctr_jump` from day
  `ctr_jump_day` on.
- rotation: every planted weight w (first-order, I-field, latent) becomes cos(a) w + sin(a) g
  with a fresh g of w's distribution, a = `effect_rotation`: the weights keep their
  distribution and their correlation with day 1's is cos(a) ** (d - 1).

All of it is drawn from `SyntheticConfig.seed`, so a day is a function of (config, drift, day).

Value ids: a field's day-1 values are 0 .. cardinality - 1, and the values born on day d >= 2
are cardinality + (d - 2) * new_ids_per_day + rank. A value is new since day 1 exactly when its
id is at least its field's cardinality (`new_value_mask`), whatever day it is seen on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from unified_embedding.runtime.flags import option
from unified_embedding.synthetic.config import CATEGORY_FIELDS, SyntheticConfig

MAX_ID = 2**32 - 1  # the text writes an id as 8 hex digits


@dataclass(frozen=True)
class DriftConfig:
    """How each day after the first differs from the one before (see the module docstring).

    Attributes:
      new_id_share: share of a later day's present values, in each high-cardinality field,
        that are born that day (never seen on an earlier day).
      new_id_retention: a value born on day b takes new_id_share * retention ** (d - b) of
        day d's values; new_id_share / (1 - retention) (< 1) is the share they approach.
      new_ids_per_day: values born per high-cardinality field per day.
      new_id_min_cardinality: fields with at least this many day-1 values get new IDs.
      ctr_drift: added to the planted bias (the base logit) per day.
      ctr_jump_day: the day (>= 2) from which `ctr_jump` is added too; None: no jump.
      ctr_jump: logit added to the bias from `ctr_jump_day` on.
      effect_rotation: angle in radians the planted weights rotate by per day.
    """

    new_id_share: float = option(
        0.05, "share of a later day's values in the high-cardinality fields born that day"
    )
    new_id_retention: float = option(
        0.8, "a value born on day b takes new-id-share * retention^(d-b) of day d's values"
    )
    new_ids_per_day: int = option(1000, "values born per high-cardinality field per day")
    new_id_min_cardinality: int = option(
        100_000, "fields with at least this many day-1 values get new IDs"
    )
    ctr_drift: float = option(0.03, "added to the planted base logit each day")
    ctr_jump_day: int | None = option(None, "from this day on, --ctr-jump is added too")
    ctr_jump: float = option(0.0, "logit added to the base from --ctr-jump-day on")
    effect_rotation: float = option(
        0.15, "radians the planted weights rotate by per day (corr with day 1: cos^(d-1))"
    )

    def __post_init__(self) -> None:
        checks: list[tuple[str, object, bool, str]] = [
            ("new_id_share", self.new_id_share, 0 <= self.new_id_share < 1, "be in [0, 1)"),
            (
                "new_id_retention",
                self.new_id_retention,
                0 <= self.new_id_retention < 1,
                "be in [0, 1)",
            ),
            ("new_ids_per_day", self.new_ids_per_day, self.new_ids_per_day >= 1, "be >= 1"),
            (
                "new_id_min_cardinality",
                self.new_id_min_cardinality,
                self.new_id_min_cardinality >= 1,
                "be >= 1",
            ),
            ("ctr_drift", self.ctr_drift, math.isfinite(self.ctr_drift), "be finite"),
            ("ctr_jump", self.ctr_jump, math.isfinite(self.ctr_jump), "be finite"),
            (
                "effect_rotation",
                self.effect_rotation,
                0 <= self.effect_rotation <= math.pi / 2,
                "be in [0, pi/2]",
            ),
        ]
        if 0 <= self.new_id_retention < 1:
            checks.append(
                (
                    "new_id_share",
                    self.new_id_share,
                    self.new_id_share < 1 - self.new_id_retention,
                    f"be below 1 - `new_id_retention` ({1 - self.new_id_retention:g})",
                )
            )
        if self.ctr_jump_day is not None:
            checks.append(("ctr_jump_day", self.ctr_jump_day, self.ctr_jump_day >= 2, "be >= 2"))
        for name, value, ok, requirement in checks:
            if not ok:
                raise ValueError(f"`{name}` should {requirement}. Received: `{name}={value!r}`")

    def base_logit_shift(self, day: int) -> float:
        """What day `day` adds to day 1's planted bias."""
        jumped = self.ctr_jump_day is not None and day >= self.ctr_jump_day
        return self.ctr_drift * (day - 1) + (self.ctr_jump if jumped else 0.0)

    def birth_shares(self, day: int) -> np.ndarray:
        """(day - 1,) share of day `day`'s values born 0, 1, ... days earlier (on day >= 2)."""
        return self.new_id_share * self.new_id_retention ** np.arange(max(day - 1, 0))


DEFAULT_DRIFT = DriftConfig()


def drifting_fields(config: SyntheticConfig, drift: DriftConfig) -> tuple[int, ...]:
    """Indices of the C fields that get new IDs."""
    return tuple(f for f, c in enumerate(config.cardinalities) if c >= drift.new_id_min_cardinality)


def last_day(config: SyntheticConfig, drift: DriftConfig) -> int:
    """The last day whose new ids still fit the 8 hex digits of the text."""
    return 1 + (MAX_ID + 1 - config.max_cardinality) // drift.new_ids_per_day


def check_day(config: SyntheticConfig, drift: DriftConfig, day: int) -> None:
    limit = last_day(config, drift)
    if not 1 <= day <= limit:
        raise ValueError(f"`day` should be in [1, {limit}]. Received: `day={day}`")


def new_id_range(config: SyntheticConfig, drift: DriftConfig, field: str, day: int) -> range:
    """The ids of the values of C field `field` born on day `day` (empty on day 1 and in the
    fields that get no new IDs)."""
    f = CATEGORY_FIELDS.index(field)
    if day < 2 or f not in drifting_fields(config, drift):
        return range(0)
    start = config.cardinalities[f] + (day - 2) * drift.new_ids_per_day
    return range(start, start + drift.new_ids_per_day)


def new_value_mask(categories: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """(n, 26) bool: the values of (n, 26) ids that are new since day 1 (born on a later day)."""
    return categories >= np.asarray(config.cardinalities)


def rows_with_new_values(categories: np.ndarray, config: SyntheticConfig) -> np.ndarray:
    """(n,) bool: the rows holding at least one value new since day 1."""
    return np.any(new_value_mask(categories, config), axis=1)


def birth_days(categories: np.ndarray, config: SyntheticConfig, drift: DriftConfig) -> np.ndarray:
    """(n, 26) int64: the day each value is born (1: a day-1 value; 0 where missing)."""
    offsets = categories - np.asarray(config.cardinalities)
    born = np.where(offsets >= 0, 2 + offsets // drift.new_ids_per_day, 1)
    return np.where(categories < 0, 0, born)
