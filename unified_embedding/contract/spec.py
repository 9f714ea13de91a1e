"""The feature contract (`spec.json`): what the pipeline writes, the model reads, serving checks.

A `FeatureSpec` names the input format, the label, every field and the one shared embedding table.
Hash salts are derived from field names (see `hashing.py`), never from field positions, so adding,
removing or reordering fields leaves every other field's buckets where they were.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unified_embedding.contract.errors import SpecError, require
from unified_embedding.contract.fields import (
    KINDS,
    MAX_VOCABULARY_VALUES,
    TRANSFORMS,
    FieldSpec,
    field_names,
)
from unified_embedding.contract.input_format import MAX_FIELD_CHARS, InputFormat
from unified_embedding.contract.table import MAX_TABLE_ROWS, TableSpec

__all__ = [
    "HASH_FUNCTION",
    "KINDS",
    "MAX_FIELD_CHARS",
    "MAX_TABLE_ROWS",
    "MAX_VOCABULARY_VALUES",
    "SPEC_VERSION",
    "TRANSFORMS",
    "FeatureSpec",
    "FieldSpec",
    "InputFormat",
    "SpecError",
    "TableSpec",
    "field_names",
]
SPEC_VERSION = 1
HASH_FUNCTION = "siphash-2-4 via tf.strings.to_hash_bucket_strong, key=blake2b(field, probe)"


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
        require(len(self.fields) > 0, f"`fields` should not be empty for spec `{self.name}`")
        names = [f.name for f in self.fields]
        repeated = sorted({n for n in names if names.count(n) > 1})
        require(not repeated, f"`fields` should not repeat names. Received duplicates {repeated}")
        require(
            self.label not in names,
            f"`label` should not also be a field. Received: `label={self.label!r}`",
        )
        columns = set(self.input_format.columns)
        require(
            self.label in columns,
            f"`label` should be one of the input columns. Received: `label={self.label!r}`",
        )
        missing = [n for n in names if n not in columns]
        require(
            not missing,
            f"every field should be an input column. Received fields {missing} not in `columns`",
        )
        require(
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
        require(
            version == SPEC_VERSION,
            f"unsupported spec version. Received: `version={version!r}`, expected {SPEC_VERSION}",
        )
        hash_function = data.pop("hash_function", HASH_FUNCTION)
        require(
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
        require(
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
        require(isinstance(data, dict), "spec JSON should be an object")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


_TABLE_KEYS = {f.name for f in dataclasses.fields(TableSpec)}
_INPUT_FORMAT_KEYS = {f.name for f in dataclasses.fields(InputFormat)}
_FIELD_KEYS = {f.name for f in dataclasses.fields(FieldSpec)}


def _reject_unknown(data: Mapping[str, Any], known: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):  # the message only then: `data` may hold a vocabulary
        raise SpecError(f"`{where}` should be an object. Received: {data!r}")
    unknown = sorted(set(data) - known)
    require(not unknown, f"unknown keys in `{where}`: {unknown}; expected some of {sorted(known)}")
    return data


def _field_from_dict(data: Mapping[str, Any]) -> FieldSpec:
    _reject_unknown(data, _FIELD_KEYS, f"fields[{data.get('name', '?')!r}]")
    values = dict(data)
    if values.get("vocabulary") is not None:
        values["vocabulary"] = tuple(values["vocabulary"])
    return FieldSpec(**values)
