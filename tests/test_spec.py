"""The feature contract: round trips, a stable fingerprint, and validation that names the value."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from unified_embedding.schemas import BUILTIN, load_schema
from unified_embedding.spec import FeatureSpec, FieldSpec, InputFormat, SpecError, TableSpec

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


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
    script = "from unified_embedding.schemas import criteo; print(criteo().fingerprint)"
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
    path.write_text(json.dumps({
        "name": "movies", "columns": ["id", "clicked", "age", "genres", "city"],
        "label": "clicked", "ignore": ["id"], "numeric": {"age": "log1p"},
        "multi_valued": {"genres": "|"}, "vocabulary": {"city": ["paris", "rome"]}, "probes": 4,
    }))  # fmt: skip
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
    with pytest.raises(SpecError, match=r"`numeric` names columns that do not exist.*\['b'\]"):
        load_schema(path)
    path.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_schema(path)
