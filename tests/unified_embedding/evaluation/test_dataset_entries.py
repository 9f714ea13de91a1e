"""A notebook's `datasets` entries are checked before anything is read or trained, and a bad
one fails in one line naming the key and the value (no traceback in a notebook)."""

import json
from pathlib import Path

import pytest

from unified_embedding.evaluation.dataset_entries import (
    REAL_SAMPLES,
    DatasetError,
    DatasetSource,
    ParameterError,
    dataset_source,
    dataset_sources,
    require_lists,
)


@pytest.fixture
def entry(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "a.csv").write_text("clicked,user\n0,u1\n1,u2\n")
    schema = {"columns": ["clicked", "user"], "label": "clicked"}
    (tmp_path / "a.json").write_text(json.dumps(schema))
    return {"name": "mine", "path": str(tmp_path / "*.csv"), "schema": str(tmp_path / "a.json")}


def test_a_good_entry_and_shared_samples_resolve(entry: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "frappe").mkdir()
    (tmp_path / REAL_SAMPLES["frappe"]).write_text("label,f0\n0,a\n")
    sources, skipped = dataset_sources([entry, "frappe", "criteo"], tmp_path)
    assert [s.name for s in sources] == ["mine", "frappe"] and skipped == ["criteo"]
    assert sources[0].files() == [tmp_path / "a.csv"]
    assert dataset_source({**entry, "path": Path(entry["path"])}, "") == sources[0]
    assert dataset_sources(["frappe"], "") == ([], ["frappe"])  # "" skips the shared samples


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"schema_file": "s"},
            r"keys are \['name', 'path', 'schema', 'eval_fraction'\]\. "
            r"Received: the key `schema_file`",
        ),
        ({"path": None}, r"`path` should be a string\. Received: `path=None` for dataset `mine`"),
        ({"name": "my data"}, r"`name` should be letters.*Received: `name='my data'`"),
        ({"name": "generated"}, r"not `generated`"),
        ({"eval_fraction": "0.2"}, r"Received: `eval_fraction='0\.2'` for dataset `mine`"),
        ({"eval_fraction": 1.0}, r"Received: `eval_fraction=1\.0`"),
        ({"path": "nothing-*.csv"}, r"`path` matches no file\. Received: `path='nothing-\*\.csv'`"),
        ({"schema": "movielens"}, r"`schema='movielens'` for dataset `mine`: unknown schema"),
    ],
)
def test_a_bad_entry_fails_in_one_line_naming_key_and_value(
    entry: dict[str, str], change: dict[str, object], message: str
) -> None:
    with pytest.raises(DatasetError, match=message) as raised:
        dataset_sources([{**entry, **change}], "")
    assert "\n" not in str(raised.value)
    assert raised.value._render_traceback_() == [f"DatasetError: {raised.value}"]


def test_entries_of_the_wrong_shape_fail_in_one_line(entry: dict[str, str]) -> None:
    with pytest.raises(DatasetError, match=r"needs `schema`\. Received"):
        dataset_sources([{"name": "x", "path": "p"}], "")
    for bad in ("movielens", 3, ["frappe"]):
        with pytest.raises(DatasetError, match=r"shared sample .* or a mapping like"):
            dataset_sources([bad], "")
    with pytest.raises(DatasetError, match="two datasets are named `mine`"):
        dataset_sources([entry, entry], "")
    with pytest.raises(ParameterError, match=r"`datasets` should be a list .* Received: `"):
        dataset_sources("frappe", "")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match=r"`seeds` should be a list"):
        require_lists(budgets=["10KB"], seeds="[0, 1]")
    with pytest.raises(DatasetError):
        DatasetSource("ok", "p", "criteo", eval_fraction=True)  # a bool is not a fraction
