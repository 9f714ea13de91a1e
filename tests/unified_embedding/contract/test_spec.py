"""The feature contract: round trips, a stable fingerprint, and validation that names the value."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from unified_embedding.contract.schemas import BUILTIN, from_short_form, load_schema
from unified_embedding.contract.spec import (
    FeatureSpec,
    FieldSpec,
    InputFormat,
    SpecError,
    TableSpec,
)

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def small_spec() -> FeatureSpec:
    return FeatureSpec(
        name="small",
        input_format=InputFormat(columns=("label", "n", "c", "m", "v")),
        label="label",
        fields=(
            FieldSpec("n", kind="numeric", transform="log1p"),
            FieldSpec("c", probes=3),
            FieldSpec("m", kind="multi_valued", separator="|"),
            FieldSpec("v", vocabulary=("a", "b")),
        ),
        table=TableSpec(rows=1000, width=8, num_tables=2),
    )


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_json_round_trip_builtin(name: str) -> None:
    spec = load_schema(name)
    assert FeatureSpec.from_json(spec.to_json()) == spec


def test_json_round_trip_all_kinds(tmp_path: Path) -> None:
    spec = small_spec()
    spec.save(tmp_path / "spec.json")
    assert FeatureSpec.load(tmp_path / "spec.json") == spec
    assert json.loads(spec.to_json())["fingerprint"] == spec.fingerprint


def test_fingerprint_stable_across_processes() -> None:
    script = "from unified_embedding.contract.schemas import criteo; print(criteo().fingerprint)"
    runs = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    }
    assert runs == {load_schema("criteo").fingerprint}


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.replace(table=TableSpec(rows=1002, width=8, num_tables=2)),
        lambda s: s.replace(table=TableSpec(rows=1000, width=4, num_tables=2)),
        lambda s: s.replace(table=TableSpec(rows=1000, width=8, num_tables=1)),
        lambda s: s.replace(embedding_dim=8),
        lambda s: s.replace(
            fields=(dataclasses.replace(s.fields[0], transform="identity"), *s.fields[1:])
        ),
        lambda s: s.replace(
            fields=(s.fields[0], dataclasses.replace(s.fields[1], probes=2), *s.fields[2:])
        ),
        lambda s: s.replace(fields=(*s.fields[:3], FieldSpec("v", vocabulary=("a", "c")))),
        lambda s: s.replace(fields=tuple(reversed(s.fields))),
        lambda s: s.replace(fields=s.fields[:-1]),
        lambda s: s.replace(
            input_format=InputFormat(columns=("label", "n", "c", "m", "v"), delimiter=",")
        ),
        lambda s: s.replace(label="n", fields=s.fields[1:]),
    ],
)
def test_fingerprint_changes_with_any_meaningful_edit(edit) -> None:  # type: ignore[no-untyped-def]
    spec = small_spec()
    assert edit(spec).fingerprint != spec.fingerprint


def test_tampered_spec_json_is_rejected() -> None:
    data = json.loads(small_spec().to_json())
    data["table"]["rows"] = 2000
    with pytest.raises(SpecError, match="fingerprint does not match"):
        FeatureSpec.from_dict(data)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: FieldSpec("bad name"), r"Received: `name='bad name'`"),
        (lambda: FieldSpec("x", kind="text"), r"Received: `kind='text'` for field `x`"),
        (lambda: FieldSpec("x", probes=0), r"Received: `probes=0` for field `x`"),
        (lambda: FieldSpec("x", kind="numeric", transform="sqrt"), r"`transform='sqrt'` for field"),
        (lambda: FieldSpec("x", transform="log1p"), r"numeric fields only.*`transform='log1p'`"),
        (lambda: FieldSpec("x", kind="multi_valued"), r"`separator=None` for field `x`"),
        (lambda: FieldSpec("x", separator="|"), r"`separator='\|'` for field `x`"),
        (lambda: FieldSpec("x", vocabulary=("a", "a")), r"repeat values.*\['a'\] for field `x`"),
        (lambda: FieldSpec("x", kind="numeric", vocabulary=("a",)), r"for field `x` of kind"),
        (lambda: TableSpec(rows=0), r"Received: `rows=0`"),
        (lambda: TableSpec(rows=10, num_tables=3), r"`rows=10`, `num_tables=3`"),
        (lambda: InputFormat(columns=("a", "a")), r"duplicates \['a'\]"),
        (lambda: InputFormat(columns=("a",), delimiter="::"), r"`delimiter='::'`"),
        (lambda: InputFormat(columns=("a",), delimiter="\n"), r"line break.*`delimiter='\\n'`"),
        (lambda: InputFormat(columns=("a",), delimiter='"'), r"quote.*`delimiter='\"'`"),
        (lambda: InputFormat(columns=("a",), max_field_chars=0), r"`max_field_chars=0`"),
        (
            lambda: FeatureSpec(
                "s", InputFormat(("y", "a")), "y", (FieldSpec("a"), FieldSpec("a"))
            ),
            r"duplicates \['a'\]",
        ),
        (lambda: FeatureSpec("s", InputFormat(("y", "a")), "z", (FieldSpec("a"),)), r"`label='z'`"),
        (lambda: FeatureSpec("s", InputFormat(("y", "a")), "y", (FieldSpec("b"),)), r"\['b'\]"),
        (
            lambda: FeatureSpec(
                "s", InputFormat(("y", "a")), "y", (FieldSpec("a"),), embedding_dim=0
            ),
            r"`embedding_dim=0`",
        ),
    ],
)
def test_validation_errors_name_field_and_value(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match=message):
        make()


def test_unknown_keys_are_named() -> None:
    data = small_spec().to_dict()
    data["fields"][1]["probs"] = 2
    with pytest.raises(SpecError, match=r"unknown keys in `fields\['c'\]`: \['probs'\]"):
        FeatureSpec.from_dict(data)


def test_builtin_schemas_name_fields_as_the_data_does() -> None:
    criteo = load_schema("criteo")
    assert criteo.field_names == tuple(
        [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    )
    assert all(f.kind == "numeric" for f in criteo.fields[:13])
    avazu = load_schema("avazu")
    assert avazu.label == "click" and "id" not in avazu.field_names and len(avazu.fields) == 22
    frappe = load_schema("frappe")
    assert frappe.field_names == tuple(f"f{i}" for i in range(10))


@pytest.mark.parametrize(
    ("name", "path"),
    [("avazu", "avazu/avazu_train_head10k.csv"), ("frappe", "frappe/frappe_train.csv")],
)
def test_builtin_headers_match_real_samples(name: str, path: str) -> None:
    sample = DATA / path
    if not sample.exists():
        pytest.skip(f"{sample} is absent")
    header = sample.open().readline().strip().split(",")
    assert tuple(header) == load_schema(name).input_format.columns


def test_criteo_columns_match_real_sample() -> None:
    sample = DATA / "criteo" / "criteo_kaggle_head10k.tsv"
    if not sample.exists():
        pytest.skip(f"{sample} is absent")
    line = sample.open().readline().rstrip("\n").split("\t")
    assert len(line) == len(load_schema("criteo").input_format.columns)


def test_short_schema_file(tmp_path: Path) -> None:
    path = tmp_path / "movies.json"
    path.write_text(
        json.dumps(
            {
                "name": "movies",
                "columns": ["id", "clicked", "age", "genres", "city"],
                "label": "clicked",
                "ignore": ["id"],
                "numeric": {"age": "log1p"},
                "multi_valued": {"genres": "|"},
                "vocabulary": {"city": ["paris", "rome"]},
                "probes": 4,
            }
        )
    )
    spec = load_schema(path)
    assert spec.field_names == ("age", "genres", "city")
    assert spec.field("age").transform == "log1p"
    assert spec.field("genres").separator == "|" and spec.field("genres").probes == 4
    assert spec.field("city").vocabulary == ("paris", "rome")
    full = tmp_path / "spec.json"
    spec.save(full)
    assert load_schema(full) == spec


def test_schema_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"Received: `schema='nope'`"):
        load_schema("nope")
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"columns": ["y", "a"], "label": "y", "numeric": ["b"]}))
    with pytest.raises(SpecError, match=r"`numeric` should name columns of `columns`.*'b'"):
        load_schema(path)
    path.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_schema(path)


# Schema entries that name a column the format does not have, or the label, were ignored
# silently; each is refused with one line naming the key and the column.
SHORT = {"name": "s", "columns": ["y", "a", "b", "c"], "label": "y"}
ABSENT = r"`{key}` should name columns of `columns`. Received: `{key}` naming 'zz'"
LABEL = r"`{key}` should not name the label. Received: `{key}` naming 'y'"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("numeric", ["zz"]),
        ("numeric", {"zz": "log1p"}),
        ("multi_valued", {"zz": "|"}),
        ("vocabulary", {"zz": ["p", "q"]}),
        ("ignore", ["zz"]),
    ],
)
def test_schema_keys_naming_an_absent_column_are_refused(
    tmp_path: Path, key: str, value: object
) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({**SHORT, key: value}))
    with pytest.raises(SpecError, match=ABSENT.format(key=key)) as caught:
        load_schema(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("numeric", ["y"]),
        ("multi_valued", {"y": "|"}),
        ("vocabulary", {"y": ["0", "1"]}),
        ("ignore", ["y"]),
    ],
)
def test_schema_keys_naming_the_label_are_refused(key: str, value: object) -> None:
    with pytest.raises(SpecError, match=LABEL.format(key=key)):
        from_short_form({**SHORT, key: value})


@pytest.mark.parametrize(
    ("first", "second", "entries"),
    [
        ("ignore", "numeric", {"ignore": ["a"], "numeric": ["a"]}),
        ("ignore", "multi_valued", {"ignore": ["a"], "multi_valued": {"a": "|"}}),
        ("ignore", "vocabulary", {"ignore": ["a"], "vocabulary": {"a": ["p"]}}),
        ("numeric", "multi_valued", {"numeric": ["a"], "multi_valued": {"a": "|"}}),
        ("numeric", "vocabulary", {"numeric": ["a"], "vocabulary": {"a": ["p"]}}),
    ],
)
def test_schema_keys_that_would_be_ignored_together_are_refused(
    first: str, second: str, entries: dict[str, object]
) -> None:
    with pytest.raises(SpecError, match=rf"in both `{first}` and `{second}`. Received: 'a'"):
        from_short_form({**SHORT, **entries})


def test_a_multi_valued_column_may_have_a_vocabulary() -> None:
    spec = from_short_form({**SHORT, "multi_valued": {"a": "|"}, "vocabulary": {"a": ["p"]}})
    assert spec.field("a").kind == "multi_valued" and spec.field("a").vocabulary == ("p",)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["fields"].append({"name": "zz", "kind": "categorical"}),
            r"every field should be an input column. Received fields \['zz'\]",
        ),
        (
            lambda d: d["fields"].append({"name": "y", "kind": "numeric"}),
            r"`label` should not also be a field. Received: `label='y'`",
        ),
        (
            lambda d: d.update(label="zz"),
            r"`label` should be one of the input columns. Received: `label='zz'`",
        ),
    ],
)
def test_full_spec_files_naming_an_absent_column_or_the_label_are_refused(
    tmp_path: Path, edit: Any, message: str
) -> None:
    data = from_short_form(SHORT).to_dict()
    edit(data)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=message):
        load_schema(path)
