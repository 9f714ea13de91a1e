"""The planted logistic model behind the labels, built (and cached) from the config."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from unified_embedding.synthetic.config import (
    CALIBRATION_STREAM,
    CATEGORY_FIELDS,
    INTEGER_FIELDS,
    MODEL_STREAM,
    SyntheticConfig,
)
from unified_embedding.synthetic.sampler import integer_features, sample_features

# Planted-model shape. Standard deviations are tuned so the default planted AUC is ~0.8.
_NUM_INTEGER_EFFECTS = 4
_NUM_CATEGORY_PAIRS = 4
_NUM_MIXED_PAIRS = 2  # (C field, I field)
_NUM_TRIPLES = 2
_FIRST_ORDER_STD = 0.25
_INTEGER_WEIGHT_STD = 0.25
_PAIR_LATENT_STD = 0.5
_TRIPLE_LATENT_STD = 0.6
_CALIBRATION_ROWS = 65_536


@dataclass(frozen=True, eq=False)
class PlantedModel:
    """The logistic model behind the labels.

    logit = bias + sum_f w_f[c_f] + sum_j beta_j z_j
            + sum_(a,b) <v_a, v_b> + sum_(a,b,c) sum_k v_a[k] v_b[k] v_c[k]

    where z_j = (log1p(max(I_j, 0)) - loc_j) / scale_j (0 if missing), v of a C field is the
    latent row of its value and v of an I field is z_j times a field vector. Tables have
    K_f + 1 rows: the last, all-zero row is shared by missing values and ranks >= K_f.
    """

    bias: float
    category_weights: tuple[np.ndarray, ...]  # per C field, (K_f + 1,)
    integer_fields: tuple[str, ...]
    integer_weights: np.ndarray  # (len(integer_fields),)
    pairs: tuple[tuple[str, str], ...]
    triples: tuple[tuple[str, str, str], ...]
    latents: Mapping[str, np.ndarray]  # C field: (K_f + 1, d); I field: (d,)

    def logits(self, integers: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """(n,) logits for (n, 13) float integers (NaN = missing) and (n, 26) value ids."""
        # As unsigned, missing (-1) is huge, so one minimum sends missing and tail to row K_f.
        unsigned = categories.T.astype(np.uint64)  # (26, n)
        rows = [
            np.minimum(ids, len(w) - 1).astype(np.intp)
            for ids, w in zip(unsigned, self.category_weights, strict=True)
        ]
        z = integer_features(integers)  # (n, 13)
        logit = np.full(categories.shape[0], self.bias)
        for weights, r in zip(self.category_weights, rows, strict=True):
            logit += weights[r]
        for name, beta in zip(self.integer_fields, self.integer_weights, strict=True):
            logit += beta * z[:, INTEGER_FIELDS.index(name)]

        def vectors(field: str) -> np.ndarray:  # (n, d)
            if field in INTEGER_FIELDS:
                return z[:, INTEGER_FIELDS.index(field), None] * self.latents[field]
            return self.latents[field][rows[CATEGORY_FIELDS.index(field)]]

        for a, b in self.pairs:
            logit += np.sum(vectors(a) * vectors(b), axis=1)
        for a, b, c in self.triples:
            logit += np.sum(vectors(a) * vectors(b) * vectors(c), axis=1)
        return logit

    def probabilities(self, integers: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """(n,) planted P(click)."""
        return 1.0 / (1.0 + np.exp(-self.logits(integers, categories)))


@functools.lru_cache(maxsize=8)
def planted_model(config: SyntheticConfig) -> PlantedModel:
    """The planted model of `config` (cached); depends only on the config, not on row counts."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, MODEL_STREAM]))
    scale = config.signal_scale
    d = config.latent_dim
    category_weights = tuple(
        np.append(scale * rng.normal(0.0, _FIRST_ORDER_STD, k), 0.0) for k in config.top_k
    )
    integer_fields = tuple(
        INTEGER_FIELDS[j]
        for j in sorted(rng.choice(len(INTEGER_FIELDS), _NUM_INTEGER_EFFECTS, replace=False))
    )
    integer_weights = scale * rng.normal(0.0, _INTEGER_WEIGHT_STD, _NUM_INTEGER_EFFECTS)

    def distinct_tuples(count: int, size: int) -> list[tuple[str, ...]]:
        chosen: list[tuple[str, ...]] = []
        while len(chosen) < count:
            fields = sorted(rng.choice(len(CATEGORY_FIELDS), size, replace=False))
            candidate = tuple(CATEGORY_FIELDS[f] for f in fields)
            if candidate not in chosen:
                chosen.append(candidate)
        return chosen

    category_pairs = distinct_tuples(_NUM_CATEGORY_PAIRS, 2)
    mixed_pairs = [
        (c[0], INTEGER_FIELDS[int(j)])
        for c, j in zip(
            distinct_tuples(_NUM_MIXED_PAIRS, 1),
            rng.choice(len(INTEGER_FIELDS), _NUM_MIXED_PAIRS, replace=False),
            strict=True,
        )
    ]
    pairs = tuple((a, b) for a, b in [*category_pairs, *mixed_pairs])
    triples = tuple((a, b, c) for a, b, c in distinct_tuples(_NUM_TRIPLES, 3))

    latents: dict[str, np.ndarray] = {}
    for field, field_scale in latent_stds(pairs, triples, scale).items():
        if field in INTEGER_FIELDS:
            latents[field] = rng.normal(0.0, field_scale, d)
        else:
            k = config.top_k[CATEGORY_FIELDS.index(field)]
            table = np.zeros((k + 1, d))
            table[:k] = rng.normal(0.0, field_scale, (k, d))
            latents[field] = table

    for array in (*category_weights, integer_weights, *latents.values()):
        array.flags.writeable = False  # the model is shared through the cache
    unbiased = PlantedModel(
        0.0, category_weights, integer_fields, integer_weights, pairs, triples, latents
    )
    return dataclasses.replace(unbiased, bias=_calibrate_bias(config, unbiased))


def latent_stds(
    pairs: tuple[tuple[str, str], ...], triples: tuple[tuple[str, str, str], ...], scale: float
) -> dict[str, float]:
    """The std of each interacting field's latent entries, in the order they are drawn.

    A field's latent scale is the geometric share of its term's scale, so a term's magnitude is
    `scale` times the tuned std whatever its order; a field in a pair and a triple keeps its
    pair's scale.
    """
    stds: dict[str, float] = {}
    for terms, std in ((pairs, _PAIR_LATENT_STD), (triples, _TRIPLE_LATENT_STD)):
        field_scale = std * scale ** (1.0 / len(terms[0]))
        for field in sorted({f for term in terms for f in term} - stds.keys()):
            stds[field] = field_scale
    return stds


def first_order_std(config: SyntheticConfig) -> float:
    """The std of a weighted value's first-order weight."""
    return config.signal_scale * _FIRST_ORDER_STD


def integer_weight_std(config: SyntheticConfig) -> float:
    """The std of an I field's weight."""
    return config.signal_scale * _INTEGER_WEIGHT_STD


def _calibrate_bias(config: SyntheticConfig, unbiased: PlantedModel) -> float:
    """Bias whose mean P(click) over a fixed calibration sample equals `config.label_rate`."""
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, CALIBRATION_STREAM]))
    logits = unbiased.logits(*sample_features(rng, config, _CALIBRATION_ROWS))
    low, high = -30.0, 30.0
    for _ in range(60):  # the mean rate is monotone in the bias, so bisection converges
        mid = (low + high) / 2.0
        if np.mean(1.0 / (1.0 + np.exp(-(logits + mid)))) < config.label_rate:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0
