"""The feature contract (`spec.json`): what the pipeline writes, the model reads, serving checks.

A `FeatureSpec` names the input format, the label, every field and the one shared embedding table.
Hash salts are derived from field names (see `hashing.py`), never from field positions, so adding,
removing or reordering fields leaves every other field's buckets where they were.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC_VERSION = 1
KINDS = ("numeric", "categorical", "multi_valued")
TRANSFORMS = ("identity", "log1p", "log_square")
HASH_FUNCTION = "siphash-2-4 via tf.strings.to_hash_bucket_strong, key=blake2b(field, probe)"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# The most rows of one (sub-)table: its row indexes must fit int32, the ids TPU embedding
# lookups take, so a table trains under every strategy (the logical table of `num_tables`
# sub-tables holds that many times more). `budget.plan_budget` refuses budgets needing more.
MAX_TABLE_ROWS = 2**31 - 1
# The most values of one field's `vocabulary`. Each value costs ~20 bytes of spec.json, which
# every process reads whole (trainer, each Beam worker, server, the export's asset), and 8 bytes
# of the exported graph, which protobuf caps at 2 GiB. At 2^24 values spec.json is ~300 MB and
# the graph's share 128 MiB; a field with more distinct values belongs in the shared table.
MAX_VOCABULARY_VALUES = 2**24
# The longest cell (in characters) a row may hold, everywhere raw rows are read: preprocessing
# and scoring dead-letter longer ones, the serving APIs refuse them (INVALID_ARGUMENT / 400).
MAX_FIELD_CHARS = 1000


class SpecError(ValueError):
    """A spec (or a schema file) that cannot be honoured; the message names the field and value."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SpecError(message)


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
        _check(
            isinstance(self.name, str) and bool(_NAME.match(self.name)),
            f"`name` should be a field name like `C1` or `site_id`. Received: `name={self.name!r}`",
        )
        where = f"for field `{self.name}`"
        _check(
            self.kind in KINDS,
            f"`kind` should be one of {KINDS}. Received: `kind={self.kind!r}` {where}",
        )
        _check(
            isinstance(self.probes, int) and 1 <= self.probes <= 64,
            f"`probes` should be an integer in [1, 64]. Received: `probes={self.probes!r}` {where}",
        )
        _check(
            self.transform in TRANSFORMS,
            f"`transform` should be one of {TRANSFORMS}. "
            f"Received: `transform={self.transform!r}` {where}",
        )
        _check(
            self.transform == "identity" or self.kind == "numeric",
            f"`transform` applies to numeric fields only. "
            f"Received: `transform={self.transform!r}` {where} of kind `{self.kind}`",
        )
        _check(
            (self.separator is not None) == (self.kind == "multi_valued"),
            f"`separator` is required for multi_valued fields and only for them. "
            f"Received: `separator={self.separator!r}` {where} of kind `{self.kind}`",
        )
        _check(
            self.separator is None or (isinstance(self.separator, str) and len(self.separator) > 0),
            f"`separator` should be a non-empty string. Received: `separator={self.separator!r}` "
            f"{where}",
        )
        if self.vocabulary is not None:
            if isinstance(self.vocabulary, list):
                object.__setattr__(self, "vocabulary", tuple(self.vocabulary))
            vocabulary = self.vocabulary
            _check(
                self.kind != "numeric",
                f"`vocabulary` applies to categorical fields only. Received a vocabulary {where} "
                "of kind `numeric`",
            )
            # O(n) checks, messages built on the error path only: millions of values load fast.
            if not vocabulary or not all(map(str.__instancecheck__, vocabulary)):
                first = list(vocabulary)[:5]
                raise SpecError(f"`vocabulary` should be a non-empty list of strings. "
                                f"Received: `vocabulary={first!r}` {where}")  # fmt: skip
            if len(vocabulary) > MAX_VOCABULARY_VALUES:
                raise SpecError(f"`vocabulary` should hold at most {MAX_VOCABULARY_VALUES} values; "
                                f"leave it out to hash a field this large. Received "
                                f"{len(vocabulary)} values {where}")  # fmt: skip
            if len(set(vocabulary)) != len(vocabulary):
                repeated = sorted(v for v, n in Counter(vocabulary).items() if n > 1)
                raise SpecError(f"`vocabulary` should not repeat values. Received duplicates "
                                f"{repeated[:5]!r} {where}")  # fmt: skip

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


@dataclass(frozen=True)
class TableSpec:
    """The one shared table: `rows` x `width`, split round-robin into `num_tables` sub-tables.

    Row `r` lives in sub-table `r % num_tables` at position `r // num_tables`, so sub-tables are
    equally full and shard evenly across devices or parameter servers.
    """

    rows: int = 2**16
    width: int = 8
    num_tables: int = 1

    def __post_init__(self) -> None:
        for name in ("rows", "width", "num_tables"):
            value = getattr(self, name)
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"`{name}` should be a positive integer. Received: `{name}={value!r}` (table)",
            )
        _check(
            self.rows % self.num_tables == 0,
            f"`rows` should be a multiple of `num_tables`. Received: `rows={self.rows}`, "
            f"`num_tables={self.num_tables}` for the table",
        )
        _check(
            self.rows // self.num_tables <= MAX_TABLE_ROWS,
            f"`rows` should be at most {MAX_TABLE_ROWS} per sub-table (int32 row indexes). "
            f"Received: `rows={self.rows}`, `num_tables={self.num_tables}` for the table",
        )

    @property
    def params(self) -> int:
        return self.rows * self.width

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class InputFormat:
    """How raw rows are laid out: `columns` in file order (label and ignored columns included);
    with `header`, each file's first line names its columns and they are matched by name, in
    any order, extra columns ignored (`headers.py`);
    `missing`: cell values that mean "missing" besides the empty cell (e.g. `null`, `\\N`);
    `max_field_chars`: longer cells make a row invalid, in every reader and API.
    CSV formats are read with RFC 4180 quoting; a tab delimiter means a plain split."""

    columns: tuple[str, ...]
    delimiter: str = "\t"
    header: bool = False
    missing: tuple[str, ...] = ()
    max_field_chars: int = MAX_FIELD_CHARS

    def __post_init__(self) -> None:
        for name in ("columns", "missing"):
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        _check(
            all(isinstance(m, str) for m in self.missing),
            f"`missing` should be a list of strings. Received: `missing={list(self.missing)!r}`",
        )
        _check(
            len(self.columns) > 0 and all(isinstance(c, str) and c for c in self.columns),
            f"`columns` should be a non-empty list of names. Received: `columns={self.columns!r}`",
        )
        repeated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        _check(not repeated, f"`columns` should not repeat names. Received duplicates {repeated}")
        _check(
            isinstance(self.delimiter, str) and len(self.delimiter) == 1,
            f"`delimiter` should be one character. Received: `delimiter={self.delimiter!r}`",
        )
        _check(
            self.delimiter not in _NOT_DELIMITERS,
            f"`delimiter` cannot be a line break, a quote or a NUL. "
            f"Received: `delimiter={self.delimiter!r}`",
        )
        limit = self.max_field_chars
        _check(
            isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1,
            f"`max_field_chars` should be a positive integer. "
            f"Received: `max_field_chars={limit!r}`",
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "columns": list(self.columns),
            "delimiter": self.delimiter,
            "header": self.header,
        }
        # Only when set: specs without them keep their fingerprint.
        if self.missing:
            out["missing"] = list(self.missing)
        if self.max_field_chars != MAX_FIELD_CHARS:
            out["max_field_chars"] = self.max_field_chars
        return out


@dataclass(frozen=True)
class FeatureSpec:
    """The whole contract: input format, label, fields (in model order) and the shared table.

    Every field comes out of an embedding layer as an `embedding_dim` vector. A hashed field whose
    `probes * table.width` differs from `embedding_dim` gets a learned per-field projection.
    """

    name: str
    input_format: InputFormat
    label: str
    fields: tuple[FieldSpec, ...]
    table: TableSpec = field(default_factory=TableSpec)
    embedding_dim: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.fields, list):
            object.__setattr__(self, "fields", tuple(self.fields))
        _check(len(self.fields) > 0, f"`fields` should not be empty for spec `{self.name}`")
        names = [f.name for f in self.fields]
        repeated = sorted({n for n in names if names.count(n) > 1})
        _check(not repeated, f"`fields` should not repeat names. Received duplicates {repeated}")
        _check(
            self.label not in names,
            f"`label` should not also be a field. Received: `label={self.label!r}`",
        )
        columns = set(self.input_format.columns)
        _check(
            self.label in columns,
            f"`label` should be one of the input columns. Received: `label={self.label!r}`",
        )
        missing = [n for n in names if n not in columns]
        _check(
            not missing,
            f"every field should be an input column. Received fields {missing} not in `columns`",
        )
        _check(
            isinstance(self.embedding_dim, int) and self.embedding_dim >= 1,
            f"`embedding_dim` should be a positive integer. "
            f"Received: `embedding_dim={self.embedding_dim!r}`",
        )

    # Lookups -----------------------------------------------------------------------------
    def field(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise SpecError(
            f"unknown field. Received: `field={name!r}`; spec `{self.name}` has "
            f"{[f.name for f in self.fields]}"
        )

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def numeric_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.kind == "numeric")

    @property
    def categorical_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.is_categorical)

    def replace(self, **changes: Any) -> FeatureSpec:
        return dataclasses.replace(self, **changes)

    # Serialization -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": SPEC_VERSION,
            "name": self.name,
            "hash_function": HASH_FUNCTION,
            "input_format": self.input_format.to_dict(),
            "label": self.label,
            "embedding_dim": self.embedding_dim,
            "table": self.table.to_dict(),
            "fields": [f.to_dict() for f in self.fields],
        }

    @property
    def fingerprint(self) -> str:
        """A stable digest of everything that changes what a model sees (not of formatting)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps({**self.to_dict(), "fingerprint": self.fingerprint}, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        data = dict(data)
        expected_fingerprint = data.pop("fingerprint", None)
        version = data.pop("version", SPEC_VERSION)
        _check(
            version == SPEC_VERSION,
            f"unsupported spec version. Received: `version={version!r}`, expected {SPEC_VERSION}",
        )
        hash_function = data.pop("hash_function", HASH_FUNCTION)
        _check(
            hash_function == HASH_FUNCTION,
            f"unsupported hash function. Received: `hash_function={hash_function!r}`",
        )
        _reject_unknown(data, {f.name for f in dataclasses.fields(cls)}, "spec")
        try:
            input_format = data["input_format"]
            raw_fields = data["fields"]
            _reject_unknown(input_format, _INPUT_FORMAT_KEYS, "input_format")
            spec = cls(
                name=data["name"],
                input_format=InputFormat(**input_format),
                label=data["label"],
                fields=tuple(_field_from_dict(f) for f in raw_fields),
                table=TableSpec(**_reject_unknown(data.get("table", {}), _TABLE_KEYS, "table")),
                embedding_dim=data.get("embedding_dim", 16),
            )
        except KeyError as e:
            raise SpecError(f"spec is missing the key {e.args[0]!r}") from None
        except TypeError as e:
            raise SpecError(f"spec has a value of the wrong type: {e}") from None
        _check(
            expected_fingerprint is None or expected_fingerprint == spec.fingerprint,
            f"spec fingerprint does not match its contents. Received: "
            f"`fingerprint={expected_fingerprint!r}`, contents give `{spec.fingerprint}`",
        )
        return spec

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError(f"spec is not valid JSON: {e}") from None
        _check(isinstance(data, dict), "spec JSON should be an object")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


_TABLE_KEYS = {"rows", "width", "num_tables"}
_INPUT_FORMAT_KEYS = {f.name for f in dataclasses.fields(InputFormat)}
_NOT_DELIMITERS = ("\n", "\r", '"', "\0")
_FIELD_KEYS = {f.name for f in dataclasses.fields(FieldSpec)}


def _reject_unknown(data: Mapping[str, Any], known: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):  # the message only then: `data` may hold a vocabulary
        raise SpecError(f"`{where}` should be an object. Received: {data!r}")
    unknown = sorted(set(data) - known)
    _check(not unknown, f"unknown keys in `{where}`: {unknown}; expected some of {sorted(known)}")
    return data


def _field_from_dict(data: Mapping[str, Any]) -> FieldSpec:
    _reject_unknown(data, _FIELD_KEYS, f"fields[{data.get('name', '?')!r}]")
    values = dict(data)
    if values.get("vocabulary") is not None:
        values["vocabulary"] = tuple(values["vocabulary"])
    return FieldSpec(**values)


def field_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(1, count + 1)]
