"""The preprocessing job end to end on temp files: generated data, defects, real samples,
determinism across runs and worker counts, and parity with the shared hashing function."""

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines.preprocess import run
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.schemas import criteo, load_schema
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.reader import parse_bytes
from unified_embedding.rows.records import read_blocks
from unified_embedding.synthetic import SyntheticConfig, generate

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def generated(rows: int, seed: int = 0) -> bytes:
    return generate(rows, SyntheticConfig(seed=seed)).to_tsv_bytes()


def row_key(row: dict) -> tuple:
    """A hashable, NaN-safe form of one row of features."""
    out = []
    for name in sorted(row):
        value = row[name]
        value = value.to_list() if isinstance(value, tf.RaggedTensor) else value.numpy().tolist()
        if isinstance(value, float) and math.isnan(value):
            value = None
        out.append((name, json.dumps(value)))
    return tuple(out)


def written_rows(output: Path, split: str = "*") -> list[tuple]:
    spec = FeatureSpec.load(output / "spec.json")
    pattern = str(output / f"{split}-*.tfrecord.gz")
    if not list(output.glob(f"{split}-*.tfrecord.gz")):
        return []
    return sorted(row_key(r) for r in read_blocks(spec, pattern))


def preprocess(tmp: Path, inputs: str, *extra: str, schema: str = "criteo") -> tuple[Path, dict]:
    output = tmp / "out"
    stats = run(["--input", inputs, "--schema", schema, "--output", str(output), *extra])
    return output, stats


def dead_letters(output: Path) -> list[dict]:
    return [
        json.loads(line)
        for f in output.glob("dead_letters-*.jsonl")
        for line in f.read_text().splitlines()
    ]


def test_generated_data(tmp_path: Path) -> None:
    (tmp_path / "day1.tsv").write_bytes(generated(3000))
    with gzip.open(tmp_path / "day2.tsv.gz", "wb") as f:
        f.write(generated(2000, seed=1))
    output, stats = preprocess(tmp_path, str(tmp_path / "day*"), "--eval-fraction", "0.2")
    assert stats["rows_read"] == stats["rows_valid"] == 5000 and stats["rows_dead"] == 0
    assert sum(stats["rows_by_split"].values()) == 5000
    assert 0.15 < stats["rows_by_split"]["eval"] / 5000 < 0.25
    assert len(written_rows(output, "train")) == stats["rows_by_split"]["train"]
    assert len(written_rows(output, "eval")) == stats["rows_by_split"]["eval"]
    spec = FeatureSpec.load(output / "spec.json")
    assert spec == criteo().replace(table=spec.table)  # the table: sized from the data
    assert stats["spec_fingerprint"] == spec.fingerprint
    fields = stats["fields"]
    assert 0.3 < fields["I1"]["missing_rate"] < 0.5  # generated with a 0.4 missing rate
    assert 8 <= fields["C1"]["approx_distinct"] <= 10  # cardinality 10
    assert fields["C26"]["approx_distinct"] > fields["C1"]["approx_distinct"]
    c26 = fields["C26"]
    assert c26["per_feature_collision_rate"] > 0 and 0 < c26["unified_probe_collision_rate"] < 1
    assert 0.15 < stats["label_rate"] < 0.35


def test_every_defect_is_dead_lettered_and_every_good_row_written(tmp_path: Path) -> None:
    good = generated(500).splitlines()
    bad = {
        "undecodable": b"1\t" + b"\t".join([b"1"] * 13) + b"\t\xff\xfe" + b"\tab" * 25,
        "wrong_column_count": b"1\t2\t3",
        "bad_label": b"7" + good[0][1:],
        "non_numeric": good[1].split(b"\t", 2)[0] + b"\tabc\t" + good[1].split(b"\t", 2)[2],
        "field_too_long": good[2].rsplit(b"\t", 1)[0] + b"\t" + b"z" * 2000,
    }
    lines = good[:250] + list(bad.values()) + good[250:]
    (tmp_path / "mixed.tsv").write_bytes(b"\n".join(lines) + b"\n")
    output, stats = preprocess(tmp_path, str(tmp_path / "mixed.tsv"))
    assert stats["rows_read"] == 505 and stats["rows_valid"] == 500 and stats["rows_dead"] == 5
    letters = {d["reason"]: d for d in dead_letters(output)}
    assert set(letters) == set(bad)
    for reason, raw in bad.items():
        assert letters[reason]["line"] == 251 + list(bad).index(reason)
        assert letters[reason]["source"].endswith("mixed.tsv")
        assert letters[reason]["raw"] == raw.decode("utf-8", errors="backslashreplace")
        assert stats["dead_by_reason"][reason] == 1
    assert "`I1` is not a number: 'abc'" in letters["non_numeric"]["detail"]
    assert "`C26` has 2000 characters" in letters["field_too_long"]["detail"]
    assert len(written_rows(output)) == 500


def test_parity_with_the_shared_hashing_function(tmp_path: Path) -> None:
    data = generated(1500)
    (tmp_path / "rows.tsv").write_bytes(data)
    output, _ = preprocess(tmp_path, str(tmp_path / "rows.tsv"))
    spec = criteo()
    raw = parse_bytes(spec, data)
    direct = encode_features(spec, {k: tf.constant(v.astype(str)) for k, v in raw.columns.items()})
    labels = tf.constant(raw.labels[:, None])
    expected = sorted(
        row_key({**{k: v[i] for k, v in direct.items()}, "label": labels[i]})
        for i in range(len(raw))
    )
    assert written_rows(output) == expected


def test_deterministic_across_runs_and_worker_counts(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_bytes(generated(1500))
    (tmp_path / "b.tsv").write_bytes(generated(1500, seed=2))
    pattern = str(tmp_path / "*.tsv")
    runs = []
    for i, extra in enumerate(
        [
            [],
            [],
            ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing"],
        ]
    ):
        output = tmp_path / f"out{i}"
        run(["--input", pattern, "--schema", "criteo", "--output", str(output), *extra])
        runs.append((written_rows(output, "train"), written_rows(output, "eval")))
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0][0]) + len(runs[0][1]) == 3000


@pytest.mark.parametrize(
    ("schema", "path", "rows"),
    [
        ("criteo", "criteo/criteo_kaggle_head10k.tsv", 10_000),
        ("avazu", "avazu/avazu_train_head10k.csv", 9_999),
        ("frappe", "frappe/frappe_train.csv", 57_722),
    ],
)
def test_real_samples(tmp_path: Path, schema: str, path: str, rows: int) -> None:
    sample = DATA / path
    if not sample.exists():
        pytest.skip(f"{sample} is absent")
    extra = ["--split-key", "id"] if schema == "avazu" else []
    output, stats = preprocess(tmp_path, str(sample), *extra, schema=schema)
    assert stats["rows_read"] == rows
    assert stats["rows_valid"] + stats["rows_dead"] == rows
    assert stats["rows_valid"] == rows, dead_letters(output)[:3]
    assert len(written_rows(output)) == rows
    spec = load_schema(schema)
    assert set(stats["fields"]) == set(spec.field_names)
    assert np.isclose(
        stats["label_rate"], {"criteo": 0.23, "avazu": 0.17, "frappe": 0.33}[schema], atol=0.03
    )


def test_golden_fingerprints_and_labels_as_the_row_by_row_job_wrote_them(tmp_path: Path) -> None:
    """tests/golden/preprocess_v1.json: rows the row-by-row job (before blocks) wrote."""
    golden = json.loads((Path(__file__).parent / "golden" / "preprocess_v1.json").read_text())
    (tmp_path / "mixed.json").write_text(json.dumps(golden["mixed"]["schema"]))
    for name, schema in (("mixed", str(tmp_path / "mixed.json")), ("criteo", "criteo")):
        (tmp_path / f"{name}.tsv").write_text("\n".join(golden[name]["lines"]) + "\n")
        output = tmp_path / f"out_{name}"
        run(["--input", str(tmp_path / f"{name}.tsv"), "--schema", schema, "--output", str(output)])
        spec = FeatureSpec.load(output / "spec.json")
        rows = []
        for r in read_blocks(spec, str(output / "*-*.tfrecord.gz")):
            row = {}
            for k, v in r.items():
                v = v.to_list() if isinstance(v, tf.RaggedTensor) else v.numpy().tolist()
                row[k] = None if isinstance(v, float) and math.isnan(v) else v
            rows.append(row)
        assert sorted(rows, key=lambda r: json.dumps(r, sort_keys=True)) == golden[name]["rows"]


def test_truncated_gzip_fails_naming_the_file_and_rows_read(tmp_path: Path) -> None:
    data = gzip.compress(generated(1000))
    (tmp_path / "cut.tsv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        Exception, match=r"cut\.tsv\.gz: truncated \.gz file.* after [1-9]\d* lines"
    ):
        preprocess(tmp_path, str(tmp_path / "cut.tsv.gz"))


def test_an_empty_glob_fails_naming_the_pattern(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no input file matches `--input .*nothing-\*`"):
        preprocess(tmp_path, str(tmp_path / "nothing-*"))


def test_a_used_output_directory_is_refused_unless_overwrite(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_bytes(generated(900))
    (tmp_path / "b.tsv").write_bytes(generated(300, seed=1))
    output, _ = preprocess(tmp_path, str(tmp_path / "a.tsv"), "--block-rows", "100")
    with pytest.raises(FileExistsError, match=r"holds .* files of an earlier run.*--overwrite"):
        preprocess(tmp_path, str(tmp_path / "b.tsv"))
    _, stats = preprocess(tmp_path, str(tmp_path / "b.tsv"), "--overwrite")
    assert stats["rows_valid"] == 300 and len(written_rows(output)) == 300


def test_too_many_dead_rows_fail_the_job_after_writing_dead_letters_and_stats(
    tmp_path: Path,
) -> None:
    good = generated(100).splitlines()
    lines = good + [b"7" + good[0][1:]] * 3 + [b"1\t2"] * 2
    (tmp_path / "bad.tsv").write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(
        RuntimeError, match=r"5 of 105 rows \(4.8%\).*wrong_column_count: 2, bad_label: 3"
    ):
        preprocess(tmp_path, str(tmp_path / "bad.tsv"))
    output = tmp_path / "out"
    assert len(dead_letters(output)) == 5
    assert json.loads((output / "stats.json").read_text())["rows_dead"] == 5
    _, stats = preprocess(
        tmp_path, str(tmp_path / "bad.tsv"), "--overwrite", "--max-dead-fraction", "0.05"
    )
    assert stats["rows_valid"] == 100


def test_csv_with_bom_header_quotes_missing_tokens_and_no_numeric_field(tmp_path: Path) -> None:
    schema = {
        "name": "movies",
        "columns": ["id", "clicked", "title", "genres", "city"],
        "label": "clicked",
        "ignore": ["id"],
        "multi_valued": {"genres": "|"},
        "missing": ["null", "\\N"],
    }
    (tmp_path / "movies.json").write_text(json.dumps(schema))
    text = (
        "\ufeffid,clicked,title,genres,city\r\n"
        '1,1,"Heat, Part 2",action|crime,paris\r\n'
        '2,0,"He said ""hi""",null,\\N\r\n'
        "3,0,Up,animation,\r\n"
    )
    (tmp_path / "movies.csv").write_bytes(text.encode())
    output, stats = preprocess(
        tmp_path,
        str(tmp_path / "movies.csv"),
        "--eval-fraction",
        "0",
        schema=str(tmp_path / "movies.json"),
    )
    assert stats["rows_read"] == 3 and stats["rows_valid"] == 3, dead_letters(output)
    assert stats["fields"]["city"]["missing_rate"] == pytest.approx(2 / 3)
    assert stats["fields"]["genres"]["missing_rate"] == pytest.approx(1 / 3)
    spec = FeatureSpec.load(output / "spec.json")
    expected = encode_features(
        spec,
        {
            "title": tf.constant(["Heat, Part 2", 'He said "hi"', "Up"]),
            "genres": tf.constant(["action|crime", "", "animation"]),
            "city": tf.constant(["paris", "", ""]),
        },
    )
    rows = next(iter(read_blocks(spec, str(output / "train-*.tfrecord.gz")).batch(3)))
    assert rows["title"].numpy().tolist() == expected["title"].numpy().tolist()
    assert rows["genres"].to_list() == expected["genres"].to_list()
    assert rows["city"].numpy().tolist() == expected["city"].numpy().tolist()
    assert rows["label"].numpy().ravel().tolist() == [1.0, 0.0, 0.0]


def test_one_file_in_many_byte_ranges_equals_one_range(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pipelines.read

    (tmp_path / "one.tsv").write_bytes(generated(3000))
    whole, _ = preprocess(tmp_path, str(tmp_path / "one.tsv"))
    monkeypatch.setattr(pipelines.read, "SPLIT_BYTES", 50_000)  # ~15 ranges
    output = tmp_path / "ranges"
    stats = run(
        [
            "--input",
            str(tmp_path / "one.tsv"),
            "--schema",
            "criteo",
            "--output",
            str(output),
            "--block-rows",
            "64",
        ]
    )
    assert stats["rows_read"] == 3000
    assert written_rows(output) == written_rows(whole)


def test_spec_json_states_the_table_training_uses(tmp_path: Path) -> None:
    """Without --budget the table is sized from the distinct counts when the job ends: spec.json,
    stats.json and the manifest agree on it, and `ue train` without a budget keeps it, whatever
    its probes; with --budget it is the budget's."""
    from unified_embedding.budget.plan import data_budget, parse_budget, plan_budget
    from unified_embedding.budget.probes import with_probes
    from unified_embedding.training.job import TrainJob
    from unified_embedding.training.run import run_config

    (tmp_path / "rows.tsv").write_bytes(generated(2000))
    output, stats = preprocess(tmp_path, str(tmp_path / "rows.tsv"), "--probes", "4")
    spec = FeatureSpec.load(output / "spec.json")
    distinct = {f.name: stats["fields"][f.name]["approx_distinct"] for f in spec.categorical_fields}
    sized = plan_budget(spec, data_budget(spec, distinct)).table
    assert spec == with_probes(criteo(), 4).replace(table=sized)
    assert sized.rows < criteo().table.rows  # 2,000 rows need far less than the schema's table
    assert stats["table"] == spec.table.to_dict() and stats["data_budget_bytes"] > 0
    assert stats["spec_fingerprint"] == spec.fingerprint
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["spec_fingerprint"] == spec.fingerprint
    assert len(written_rows(output)) == 2000  # the records read under the final spec.json
    for probes in (None, 2, "auto"):  # fewer probes: projections, paid outside the table
        job = TrainJob(str(output), str(tmp_path / "model"), probes=probes)
        assert run_config(job, spec, "float32").feature_spec().table == spec.table, probes

    given = tmp_path / "budget"
    argv = ["--input", str(tmp_path / "rows.tsv"), "--schema", "criteo", "--output", str(given)]
    stats = run([*argv, "--budget", "100KB"])
    spec = FeatureSpec.load(given / "spec.json")
    assert spec.table == plan_budget(criteo(), parse_budget("100KB")).table
    assert stats["table"] == spec.table.to_dict() and "data_budget_bytes" not in stats
    job = TrainJob(str(given), str(tmp_path / "model"))
    assert run_config(job, spec, "float32").feature_spec().table == spec.table


def test_main_prints_the_summary_and_one_json_line_and_refuses_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.preprocess import main

    (tmp_path / "rows.tsv").write_bytes(generated(300))
    argv = ["--input", str(tmp_path / "rows.tsv"), "--schema", "criteo"]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "rows_read": 300,
        "rows_valid": 300,
        "rows_dead": 0,
        "dead_by_reason": dict.fromkeys(json.loads(out)["dead_by_reason"], 0),
        "rows_by_split": json.loads((tmp_path / "out" / "stats.json").read_text())["rows_by_split"],
    }
    assert "rows read" in err and "300" in err and "INFO" not in err  # no Beam INFO lines
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2  # an earlier run's files
    assert "ue preprocess: error: `--output" in capsys.readouterr().err
    missing = ["--input", str(tmp_path / "none" / "*.tsv"), "--schema", "criteo"]
    assert main([*missing, "--output", str(tmp_path / "o")]) == 2
    assert "ue preprocess: error: no input file matches" in capsys.readouterr().err
    assert main([*argv, "--output", str(tmp_path / "o"), "--eval-fraction", "2"]) == 2
    assert "`--eval-fraction` should be in [0, 1]. Received: `--eval-fraction 2.0`" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()
