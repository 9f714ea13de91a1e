"""Built-in schemas (`criteo`, `avazu`, `frappe`) and small schema files for any other CSV/TSV.

A schema file is JSON, either a full `spec.json` or this short form (only `columns` and `label`
are required; unlisted columns are categorical):

    {"name": "movies", "columns": ["id", "clicked", "age", "genres", "city"], "label": "clicked",
     "delimiter": ",", "header": true, "ignore": ["id"], "numeric": {"age": "log1p"},
     "multi_valued": {"genres": "|"}, "vocabulary": {"city": ["paris", "rome"]}, "probes": 2,
     "missing": ["null", "\\N"]}

`delimiter` "," (the default) reads RFC 4180 CSV (quotes, doubled quotes); "\t" a plain TSV.
`header` (default true): each file's first line names its columns, matched to `columns` by name
(any order; extra columns are ignored; a missing one fails naming it); false: by position.
`numeric`, `multi_valued`, `vocabulary` and `ignore` name columns other than the label; a name
that is not a column, the label, or in two keys that exclude each other, is refused.
`missing` lists cell values that mean "missing" besides the empty cell; `max_field_chars` the
longest cell a row may hold (default 1000; longer rows are dead letters, and the served model
refuses them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from unified_embedding.contract.spec import (
    MAX_FIELD_CHARS,
    FeatureSpec,
    FieldSpec,
    InputFormat,
    SpecError,
    field_names,
)

_SHORT_KEYS = {
    "name",
    "columns",
    "label",
    "delimiter",
    "header",
    "ignore",
    "numeric",
    "multi_valued",
    "vocabulary",
    "probes",
    "embedding_dim",
    "missing",
    "max_field_chars",
}


def criteo() -> FeatureSpec:
    """Criteo Display Advertising: TSV, no header, `label, I1..I13, C1..C26`."""
    integers, categories = field_names("I", 13), field_names("C", 26)
    return FeatureSpec(
        name="criteo",
        input_format=InputFormat(columns=("label", *integers, *categories), delimiter="\t"),
        label="label",
        fields=(
            *(FieldSpec(n, kind="numeric", transform="log1p") for n in integers),
            *(FieldSpec(n) for n in categories),
        ),
    )


_AVAZU_COLUMNS = (
    "id",
    "click",
    "hour",
    "C1",
    "banner_pos",
    "site_id",
    "site_domain",
    "site_category",
    "app_id",
    "app_domain",
    "app_category",
    "device_id",
    "device_ip",
    "device_model",
    "device_type",
    "device_conn_type",
    "C14",
    "C15",
    "C16",
    "C17",
    "C18",
    "C19",
    "C20",
    "C21",
)


def avazu() -> FeatureSpec:
    """Avazu: CSV with header; label `click`; `id` is a row id, not a feature."""
    return FeatureSpec(
        name="avazu",
        input_format=InputFormat(columns=_AVAZU_COLUMNS, delimiter=",", header=True),
        label="click",
        fields=tuple(FieldSpec(n) for n in _AVAZU_COLUMNS if n not in ("id", "click")),
    )


def frappe() -> FeatureSpec:
    """Frappe app usage: CSV with header `label,f0..f9`, every field a categorical id."""
    names = tuple(f"f{i}" for i in range(10))
    return FeatureSpec(
        name="frappe",
        input_format=InputFormat(columns=("label", *names), delimiter=",", header=True),
        label="label",
        fields=tuple(FieldSpec(n) for n in names),
    )


BUILTIN: dict[str, Callable[[], FeatureSpec]] = {
    "criteo": criteo,
    "avazu": avazu,
    "frappe": frappe,
}


def load_schema(name_or_path: str | Path) -> FeatureSpec:
    """A built-in schema by name, or a schema file (short form or full spec.json) by path."""
    if str(name_or_path) in BUILTIN:
        return BUILTIN[str(name_or_path)]()
    path = Path(name_or_path)
    if not path.is_file():
        raise SpecError(
            f"unknown schema. Received: `schema={str(name_or_path)!r}`; expected one of "
            f"{sorted(BUILTIN)} or the path of a schema file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SpecError(f"schema file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"schema file {path} should hold a JSON object")
    return FeatureSpec.from_dict(data) if "fields" in data else from_short_form(data)


def from_short_form(data: Mapping[str, Any]) -> FeatureSpec:
    unknown = sorted(set(data) - _SHORT_KEYS)
    if unknown:
        raise SpecError(
            f"unknown keys in schema: {unknown}; expected some of {sorted(_SHORT_KEYS)}"
        )
    try:
        columns, label = tuple(data["columns"]), data["label"]
    except KeyError as e:
        raise SpecError(f"schema is missing the key {e.args[0]!r}") from None
    numeric = _as_mapping(data.get("numeric", {}), "identity")
    multi_valued = dict(data.get("multi_valued", {}))
    vocabulary = dict(data.get("vocabulary", {}))
    ignore = list(data.get("ignore", ()))
    _check_names(
        columns,
        label,
        numeric=numeric,
        multi_valued=multi_valued,
        vocabulary=vocabulary,
        ignore=ignore,
    )
    probes = data.get("probes", 2)

    def make(column: str) -> FieldSpec:
        if column in numeric:
            return FieldSpec(column, kind="numeric", transform=numeric[column])
        words = vocabulary.get(column)
        vocab = tuple(words) if words is not None else None
        if column in multi_valued:
            return FieldSpec(
                column, "multi_valued", probes, separator=multi_valued[column], vocabulary=vocab
            )
        return FieldSpec(column, probes=probes, vocabulary=vocab)

    return FeatureSpec(
        name=data.get("name", "custom"),
        input_format=InputFormat(
            columns=columns,
            delimiter=data.get("delimiter", ","),
            header=data.get("header", True),
            missing=tuple(data.get("missing", ())),
            max_field_chars=data.get("max_field_chars", MAX_FIELD_CHARS),
        ),
        label=label,
        fields=tuple(make(c) for c in columns if c != label and c not in ignore),
        embedding_dim=data.get("embedding_dim", 16),
    )


# Keys that cannot both name one column: an ignored column has no kind, a numeric one no
# values to list or split.
_EXCLUSIVE = (
    ("ignore", "numeric"),
    ("ignore", "multi_valued"),
    ("ignore", "vocabulary"),
    ("numeric", "multi_valued"),
    ("numeric", "vocabulary"),
)


def _check_names(
    columns: tuple[str, ...], label: Any, **keys: Mapping[str, Any] | list[str]
) -> None:
    """Each key of the short form names columns of `columns`, never the label, and no column
    is named by two keys that exclude each other: a name that would be ignored is an error."""
    for key, names in keys.items():
        for name in names:
            if name == label:
                raise SpecError(
                    f"`{key}` should not name the label. Received: `{key}` naming {name!r}, "
                    f"the `label`"
                )
            if name not in columns:
                raise SpecError(
                    f"`{key}` should name columns of `columns`. Received: `{key}` naming "
                    f"{name!r}, not one of {list(columns)}"
                )
    for first, second in _EXCLUSIVE:
        both = [name for name in keys[first] if name in keys[second]]
        if both:
            raise SpecError(
                f"a column cannot be in both `{first}` and `{second}`. Received: {both[0]!r} "
                f"in both"
            )


def _as_mapping(value: Any, default: str) -> dict[str, str]:
    """`numeric` may be a list of names (identity transform) or a {name: transform} object."""
    if isinstance(value, Mapping):
        return dict(value)
    return {name: default for name in value}
