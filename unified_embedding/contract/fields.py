"""One input field of the contract: its kind, probes, numeric transform, separator and
optional collision-free vocabulary."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from unified_embedding.contract.errors import SpecError, require

KINDS = ("numeric", "categorical", "multi_valued")
TRANSFORMS = ("identity", "log1p", "log_square")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# The most values of one field's `vocabulary`. Each value costs ~20 bytes of spec.json, which
# every process reads whole (trainer, each Beam worker, server, the export's asset), and 8 bytes
# of the exported graph, which protobuf caps at 2 GiB. At 2^24 values spec.json is ~300 MB and
# the graph's share 128 MiB; a field with more distinct values belongs in the shared table.
MAX_VOCABULARY_VALUES = 2**24


@dataclass(frozen=True)
class FieldSpec:
    """One input field.

    Args:
        name: the column name as the data names it (`I1`, `C1`, `site_id`, ...).
        kind: `numeric` (value x learned vector), `categorical`, or `multi_valued` (a list of
            categorical values in one column, split on `separator` and mean-pooled).
        probes: hashed probes into the shared table; the field's embedding is the concatenation
            of `probes` rows of the table's `width` (categorical and multi-valued fields only).
        transform: numeric transform: `identity`, `log1p` (signed `log(1 + |x|)`), or
            `log_square` (signed `floor(log(|x|)^2)` for |x| > 2, the AutoInt/DCN Criteo recipe).
        separator: the value separator of a multi-valued field.
        vocabulary: a small collision-free table for a low-cardinality categorical field: each
            listed value (and the missing value) gets its own row, anything else one shared
            out-of-vocabulary row. The field then does not use the shared table.
    """

    name: str
    kind: str = "categorical"
    probes: int = 2
    transform: str = "identity"
    separator: str | None = None
    vocabulary: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        require(
            isinstance(self.name, str) and bool(_NAME.match(self.name)),
            f"`name` should be a field name like `C1` or `site_id`. Received: `name={self.name!r}`",
        )
        where = f"for field `{self.name}`"
        require(
            self.kind in KINDS,
            f"`kind` should be one of {KINDS}. Received: `kind={self.kind!r}` {where}",
        )
        require(
            isinstance(self.probes, int) and 1 <= self.probes <= 64,
            f"`probes` should be an integer in [1, 64]. Received: `probes={self.probes!r}` {where}",
        )
        require(
            self.transform in TRANSFORMS,
            f"`transform` should be one of {TRANSFORMS}. "
            f"Received: `transform={self.transform!r}` {where}",
        )
        require(
            self.transform == "identity" or self.kind == "numeric",
            f"`transform` applies to numeric fields only. "
            f"Received: `transform={self.transform!r}` {where} of kind `{self.kind}`",
        )
        require(
            (self.separator is not None) == (self.kind == "multi_valued"),
            f"`separator` is required for multi_valued fields and only for them. "
            f"Received: `separator={self.separator!r}` {where} of kind `{self.kind}`",
        )
        require(
            self.separator is None or (isinstance(self.separator, str) and len(self.separator) > 0),
            f"`separator` should be a non-empty string. Received: `separator={self.separator!r}` "
            f"{where}",
        )
        if self.vocabulary is not None:
            if isinstance(self.vocabulary, list):
                object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
            require(
                self.kind != "numeric",
                f"`vocabulary` applies to categorical fields only. Received a vocabulary {where} "
                "of kind `numeric`",
            )
            _check_vocabulary(self.vocabulary, where)

    @property
    def is_categorical(self) -> bool:
        return self.kind != "numeric"

    @property
    def is_hashed(self) -> bool:
        """True when the field probes the shared table."""
        return self.is_categorical and self.vocabulary is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.is_categorical:
            out["probes"] = self.probes
        if self.kind == "numeric":
            out["transform"] = self.transform
        if self.separator is not None:
            out["separator"] = self.separator
        if self.vocabulary is not None:
            out["vocabulary"] = list(self.vocabulary)
        return out


def field_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, count + 1)]


def _check_vocabulary(vocabulary: tuple[str, ...], where: str) -> None:
    """O(n) checks, messages built on the error path only: millions of values load fast."""
    if not vocabulary or not all(map(str.__instancecheck__, vocabulary)):
        first = list(vocabulary)[:5]
        raise SpecError(
            f"`vocabulary` should be a non-empty list of strings. "
            f"Received: `vocabulary={first!r}` {where}"
        )
    if len(vocabulary) > MAX_VOCABULARY_VALUES:
        raise SpecError(
            f"`vocabulary` should hold at most {MAX_VOCABULARY_VALUES} values; leave it out to "
            f"hash a field this large. Received {len(vocabulary)} values {where}"
        )
    if len(set(vocabulary)) != len(vocabulary):
        repeated = sorted(v for v, n in Counter(vocabulary).items() if n > 1)
        raise SpecError(
            f"`vocabulary` should not repeat values. Received duplicates {repeated[:5]!r} {where}"
        )
