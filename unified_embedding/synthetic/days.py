"""The planted model of each day (`day_model`) and the new IDs drawn into a day's rows.

Day d's model is day d - 1's with its weights rotated and the weighted values born on day d
appended (see `drift.py`); each step draws from its own stream `(seed, DRIFT_STREAM, d)`, so
day d is a function of (config, drift, d) alone. Day 1's model is `planted_model(config)`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from unified_embedding.synthetic.config import (
    CATEGORY_FIELDS,
    DRIFT_STREAM,
    INTEGER_FIELDS,
    SyntheticConfig,
)
from unified_embedding.synthetic.drift import DriftConfig, check_day, drifting_fields, last_day
from unified_embedding.synthetic.planted import (
    PlantedModel,
    first_order_std,
    integer_weight_std,
    latent_stds,
    planted_model,
)
from unified_embedding.synthetic.sampler import zipf_ranks


@dataclass(frozen=True, eq=False)
class DayModel:
    """The planted model of one day.

    `model`'s C-field tables hold, per field, its weighted day-1 values, then the weighted
    values born on each day 2..`day` (`weighted_births` each), then the zero row; `table_rows`
    maps value ids to those rows.
    """

    day: int
    config: SyntheticConfig
    drift: DriftConfig
    model: PlantedModel

    @property
    def weighted_births(self) -> int:
        """Values born per field and day that carry planted effects."""
        return min(self.drift.new_ids_per_day, self.config.weighted_top_k)

    def table_rows(self, categories: np.ndarray) -> np.ndarray:
        """(n, 26) rows of `model`'s tables for (n, 26) value ids; -1 selects the zero row."""
        rows = categories.copy()
        per_day = self.drift.new_ids_per_day
        for f in drifting_fields(self.config, self.drift):
            ids = categories[:, f]
            k = self.config.top_k[f]
            born_day_index, rank = np.divmod(ids - self.config.cardinalities[f], per_day)
            born = (ids >= self.config.cardinalities[f]) & (born_day_index <= self.day - 2)
            weighted_birth = born & (rank < self.weighted_births)
            birth_row = k + born_day_index * self.weighted_births + rank
            rows[:, f] = np.where(weighted_birth, birth_row, np.where(ids < k, ids, -1))
        return rows

    def logits(self, integers: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """(n,) logits of (n, 13) integers and (n, 26) value ids (see `PlantedModel.logits`)."""
        return self.model.logits(integers, self.table_rows(categories))

    def probabilities(self, integers: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """(n,) the day's planted P(click)."""
        return 1.0 / (1.0 + np.exp(-self.logits(integers, categories)))


def day_models(config: SyntheticConfig, drift: DriftConfig) -> Iterator[DayModel]:
    """The models of day 1, 2, ... in turn, up to `last_day` (a step rotates the tables)."""
    first = planted_model(config)
    yield DayModel(1, config, drift, first)
    weights = [w[:-1].copy() for w in first.category_weights]  # without the zero rows
    integer_weights = first.integer_weights.copy()
    latents = {
        f: v.copy() if f in INTEGER_FIELDS else v[:-1].copy() for f, v in first.latents.items()
    }
    stds = latent_stds(first.pairs, first.triples, config.signal_scale)
    births = min(drift.new_ids_per_day, config.weighted_top_k)
    for day in range(2, last_day(config, drift) + 1):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, DRIFT_STREAM, day]))
        rotate = functools.partial(_rotate, rng, drift.effect_rotation)
        weights = [rotate(w, first_order_std(config)) for w in weights]
        integer_weights = rotate(integer_weights, integer_weight_std(config))
        latents = {f: rotate(v, stds[f]) for f, v in latents.items()}
        for f in drifting_fields(config, drift):  # then the day's births, fresh
            field = CATEGORY_FIELDS[f]
            born = first_order_std(config) * rng.standard_normal(births)
            weights[f] = np.concatenate([weights[f], born])
            if field in latents:
                born_latents = stds[field] * rng.standard_normal((births, config.latent_dim))
                latents[field] = np.concatenate([latents[field], born_latents])
        model = _with_tables(first, weights, integer_weights, latents, drift, day)
        yield DayModel(day, config, drift, model)


def _rotate(rng: np.random.Generator, angle: float, w: np.ndarray, std: float) -> np.ndarray:
    """cos(angle) w + sin(angle) g, g ~ N(0, std^2) fresh: w's distribution, turned."""
    return math.cos(angle) * w + math.sin(angle) * std * rng.standard_normal(w.shape)


@functools.lru_cache(maxsize=8)
def day_model(config: SyntheticConfig, drift: DriftConfig, day: int) -> DayModel:
    """The planted model of day `day` (cached)."""
    check_day(config, drift, day)
    models = day_models(config, drift)
    for _ in range(day - 1):
        next(models)
    return next(models)


def _with_tables(
    first: PlantedModel,
    weights: list[np.ndarray],
    integer_weights: np.ndarray,
    latents: dict[str, np.ndarray],
    drift: DriftConfig,
    day: int,
) -> PlantedModel:
    """`first` with these weights (the zero rows appended) and day `day`'s bias."""
    zero_row_latents = {
        f: v if f in INTEGER_FIELDS else np.concatenate([v, np.zeros((1, v.shape[1]))])
        for f, v in latents.items()
    }
    tables = (
        *(np.append(w, 0.0) for w in weights),
        integer_weights.copy(),
        *zero_row_latents.values(),
    )
    for array in tables:
        array.flags.writeable = False  # day models are shared through the cache
    return dataclasses.replace(
        first,
        bias=first.bias + drift.base_logit_shift(day),
        category_weights=tables[: len(weights)],
        integer_weights=tables[len(weights)],
        latents=dict(zip(latents, tables[len(weights) + 1 :], strict=True)),
    )


def draw_new_ids(
    rng: np.random.Generator,
    categories: np.ndarray,
    config: SyntheticConfig,
    drift: DriftConfig,
    day: int,
) -> np.ndarray:
    """(n, 26) ids with day `day`'s share of present values replaced by values born on days
    2..`day` (each day's births Zipf-ranked); the draws do not depend on which are missing."""
    out = categories.copy()
    fields = drifting_fields(config, drift)
    shares = np.cumsum(drift.birth_shares(day))  # born 0, 1, ... days before `day`
    picks = rng.random((len(fields), categories.shape[0]))
    rank_uniforms = rng.random((len(fields), categories.shape[0]))
    for i, f in enumerate(fields):
        days_before = np.searchsorted(shares, picks[i], side="right")
        chosen = np.flatnonzero((days_before < shares.size) & (categories[:, f] >= 0))
        ranks = zipf_ranks(rank_uniforms[i, chosen], drift.new_ids_per_day, config.zipf_exponent)
        born_day = day - days_before[chosen]
        first_id = config.cardinalities[f] + (born_day - 2) * drift.new_ids_per_day
        out[chosen, f] = first_id + ranks
    return out
