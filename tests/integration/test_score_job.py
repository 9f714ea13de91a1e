"""The batch scoring job on temp files: scores equal the in-process SavedModel for every
field-kind mix, keys join back to the input, dead letters as in preprocessing, labels
optional, the fail-loud rules, and the whole path through the `ue` command line."""

import csv
import functools
import gzip
import io
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from pipelines.inference import resolve_model
from pipelines.preprocess import run as preprocess
from pipelines.score import run
from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.metrics.exact import summary_metrics
from unified_embedding.synthetic import SyntheticConfig, generate

# Two custom inputs beside Criteo (numeric + categorical): no numeric field at all, and a
# numeric field next to a multi-valued one.
#
#   movies.csv (header, RFC 4180 quotes, `null` / `\N` missing)   mixed.tsv (no header)
#   id | clicked | title      | genres (|)   | city              label | age | tags (,) | site
#   7  | 1       | "Heat, 2"  | action|crime | paris             1     | 31  | a,b      | s3
#   8  |         | Up         | null         | \N                      |     |          | s1
MOVIES = {
    "name": "movies",
    "columns": ["id", "clicked", "title", "genres", "city"],
    "label": "clicked",
    "ignore": ["id"],
    "multi_valued": {"genres": "|"},
    "missing": ["null", "\\N"],
}
MIXED = {
    "name": "mixed",
    "columns": ["label", "age", "tags", "site"],
    "label": "label",
    "delimiter": "\t",
    "header": False,
    "numeric": {"age": "log1p"},
    "multi_valued": {"tags": ","},
}


def write_movies(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(MOVIES["columns"])
    for i in range(rows):
        genres = "|".join(rng.sample(["action", "crime", "drama", "kids"], rng.randint(1, 3)))
        writer.writerow(
            [
                1000 + i,
                rng.choice(["0", "1", ""]),
                rng.choice(["Heat, 2", 'Say "hi"', "Up", ""]),
                rng.choice([genres, genres, "null"]),
                rng.choice(["paris", "rome", "\\N", ""]),
            ]
        )
    path.write_text(buffer.getvalue())


def write_mixed(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    lines = []
    for _ in range(rows):
        tags = ",".join(rng.sample("abcdef", rng.randint(1, 4)))
        age = rng.choice([str(rng.randint(0, 90)), f"{rng.uniform(-5, 5):.3f}", "1e3", ""])
        label = rng.choice(["0", "1"])
        lines.append("\t".join([label, age, rng.choice([tags, ""]), f"s{rng.randint(0, 9)}"]))
    path.write_text("\n".join(lines) + "\n")


def export_untrained(spec: FeatureSpec, base: Path) -> Path:
    """A small AutoInt over `spec` with its initial weights, exported (scores vary by row)."""
    from unified_embedding.contract.features import encode_features
    from unified_embedding.exported.writer import export, warmup_inputs
    from unified_embedding.layers.unified import UnifiedEmbedding
    from unified_embedding.models.autoint import AutoIntConfig, build_autoint

    tf.keras.utils.set_random_seed(0)
    model = build_autoint(UnifiedEmbedding(spec), AutoIntConfig(num_layers=2, head_dim=8))
    raw = {k: tf.constant(v) for k, v in warmup_inputs(spec, 2).items()}
    model.probabilities(encode_features(spec, raw))  # builds the weights
    return export(model, spec, base)


@functools.cache
def serving_default(version: Path):  # type: ignore[no-untyped-def]
    return tf.saved_model.load(str(version)).signatures["serving_default"]


def oracle(version: Path, spec: FeatureSpec, rows: list[dict[str, str]]) -> np.ndarray:
    """The in-process SavedModel's scores, the rows parsed with Python's csv module."""
    missing = set(spec.input_format.missing)
    inputs = {}
    for f in spec.fields:
        cells = ["" if r[f.name] in missing else r[f.name] for r in rows]
        if f.is_categorical:
            inputs[f.name] = tf.constant(cells, tf.string)
        else:
            inputs[f.name] = tf.constant([float(c) if c else np.nan for c in cells], tf.float32)
    return serving_default(version)(**inputs)["probability"].numpy()


def input_rows(spec: FeatureSpec, path: Path) -> list[dict[str, str]]:
    fmt = spec.input_format
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
        if fmt.delimiter == "\t":
            lines = [line.rstrip("\r\n").split("\t") for line in f]
        else:
            lines = list(csv.reader(f, delimiter=fmt.delimiter))
    lines = lines[1:] if fmt.header else lines
    return [dict(zip(fmt.columns, cells, strict=True)) for cells in lines]


def score_table(output: Path) -> pa.Table:
    shards = sorted(output.glob("scores-*"))
    assert shards, f"no score shards in {output}"
    read = pq.read_table if shards[0].suffix == ".parquet" else pa_csv.read_csv
    tables = [read(s) for s in shards]
    return pa.concat_tables([t for t in tables if t.num_rows] or tables[:1])


def dead_letters(output: Path) -> list[dict]:
    return [
        json.loads(line)
        for f in output.glob("dead_letters-*.jsonl")
        for line in f.read_text().splitlines()
    ]


def score(*args: str) -> dict:
    return run(list(args))


@pytest.mark.parametrize("mix", ["numeric_and_categorical", "no_numeric", "numeric_and_multi"])
def test_scores_equal_the_in_process_saved_model(tmp_path: Path, exported_model, mix: str) -> None:  # type: ignore[no-untyped-def]
    if mix == "numeric_and_categorical":
        version, spec, path = exported_model.version, exported_model.spec, exported_model.rows_file
        keys, extra = ["source", "offset"], ["--format", "parquet"]
    else:
        schema = MOVIES if mix == "no_numeric" else MIXED
        spec = load_schema(_write_json(tmp_path / "schema.json", schema))
        version = export_untrained(spec, tmp_path / "export")
        path = tmp_path / ("movies.csv" if mix == "no_numeric" else "mixed.tsv")
        (write_movies if mix == "no_numeric" else write_mixed)(path, 300)
        keys, extra = (["id"], ["--key-columns", "id"]) if mix == "no_numeric" else (["offset"], [])
    stats = score(
        "--model",
        str(version),
        "--input",
        str(path),
        "--output",
        str(tmp_path / "out"),
        "--block-rows",
        "64",
        *extra,
    )
    rows = input_rows(spec, path)
    assert stats["rows_read"] == stats["rows_scored"] == len(rows) and stats["rows_dead"] == 0
    table = score_table(tmp_path / "out")
    assert table.num_rows == len(rows)
    expected = oracle(version, spec, rows)
    if keys == ["id"]:
        order = {r["id"]: i for i, r in enumerate(rows)}
        index = [order[str(k)] for k in table.column("id").to_pylist()]
    else:  # the byte offset of each line's start
        starts = [0, *np.cumsum([len(line) for line in path.read_bytes().splitlines(True)])]
        index = [starts.index(o) for o in table.column("offset").to_pylist()]
    assert sorted(index) == list(range(len(rows)))  # every row exactly once
    got = table.column("probability").to_numpy()
    np.testing.assert_allclose(got, expected[index], rtol=0, atol=1e-6)
    assert np.std(got) > 1e-4  # the rows really score differently
    assert stats["model"]["version"] == int(version.name)


def _write_json(path: Path, data: dict) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_keys_join_back_to_the_input_whatever_the_reading_order(
    tmp_path: Path,
    exported_model,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    import pipelines.read

    config = SyntheticConfig(seed=7, weighted_top_k=3, signal_scale=2.0)
    plain = generate(600, config, start_row=3000).to_tsv_bytes()
    (tmp_path / "a.tsv").write_bytes(plain)
    (tmp_path / "b.tsv.gz").write_bytes(gzip.compress(exported_model.rows_file.read_bytes()))
    monkeypatch.setattr(pipelines.read, "SPLIT_BYTES", 20_000)  # a.tsv in ~8 byte ranges
    stats = score(
        "--model",
        str(exported_model.export_base),
        "--input",
        str(tmp_path / "*.tsv*"),
        "--output",
        str(tmp_path / "out"),
        "--block-rows",
        "50",
    )
    table = score_table(tmp_path / "out")
    assert stats["rows_scored"] == table.num_rows == 800
    texts = {"a.tsv": plain, "b.tsv.gz": exported_model.rows_file.read_bytes()}
    lines = []
    for source, offset in zip(
        table.column("source").to_pylist(), table.column("offset").to_pylist(), strict=True
    ):
        data = texts[Path(source).name]
        lines.append(data[offset : data.index(b"\n", offset)].decode())
    assert (
        len(
            set(
                zip(
                    table.column("source").to_pylist(),
                    table.column("offset").to_pylist(),
                    strict=True,
                )
            )
        )
        == 800
    )
    spec = exported_model.spec
    rows = [dict(zip(spec.input_format.columns, line.split("\t"), strict=True)) for line in lines]
    expected = oracle(exported_model.version, spec, rows)
    np.testing.assert_allclose(table.column("probability").to_numpy(), expected, atol=1e-6)


def test_dead_letters_as_in_preprocessing_and_labels_optional(
    tmp_path: Path, exported_model
) -> None:  # type: ignore[no-untyped-def]
    good = exported_model.rows_file.read_bytes().splitlines()
    unlabelled = [b"\t" + line.split(b"\t", 1)[1] for line in good[:40]]  # empty label cell
    bad = [
        b"1\t" + b"\t".join([b"1"] * 13) + b"\t\xff\xfe" + b"\tab" * 25,  # undecodable
        b"1\t2\t3",  # wrong_column_count
        b"7" + good[0][1:],  # bad_label
        good[1].split(b"\t", 2)[0] + b"\tabc\t" + good[1].split(b"\t", 2)[2],  # non_numeric
        good[2].rsplit(b"\t", 1)[0] + b"\t" + b"z" * 2000,  # field_too_long
    ]
    lines = unlabelled + good[40:100] + bad + good[100:]
    (tmp_path / "mixed.tsv").write_bytes(b"\n".join(lines) + b"\n")
    stats = score(
        "--model",
        str(exported_model.version),
        "--input",
        str(tmp_path / "mixed.tsv"),
        "--output",
        str(tmp_path / "scored"),
        "--max-dead-fraction",
        "0.05",
    )
    preprocess(
        [
            "--input",
            str(tmp_path / "mixed.tsv"),
            "--schema",
            "criteo",
            "--output",
            str(tmp_path / "prep"),
            "--max-dead-fraction",
            "1",
        ]
    )
    scored = {d["line"]: (d["reason"], d["detail"]) for d in dead_letters(tmp_path / "scored")}
    prep = {d["line"]: (d["reason"], d["detail"]) for d in dead_letters(tmp_path / "prep")}
    assert sorted(r for r, _ in scored.values()) == sorted(
        ["undecodable", "wrong_column_count", "bad_label", "non_numeric", "field_too_long"]
    )
    # the same lines, reasons and details (a label may also be empty when scoring, and the
    # detail says so); preprocessing also refuses the 40 empty labels
    assert {line: prep[line][0] for line in scored} == {k: v[0] for k, v in scored.items()}
    assert {k: v[1] for k, v in scored.items() if v[0] != "bad_label"} == {
        k: prep[k][1] for k, v in scored.items() if v[0] != "bad_label"
    }
    assert "should be 0, 1 or empty. Received: '7'" in dict(scored.values())["bad_label"]
    assert sorted(set(prep) - set(scored)) == list(range(1, 41))
    assert all(prep[line][0] == "bad_label" for line in range(1, 41))
    assert stats["rows_read"] == len(lines) and stats["rows_scored"] == len(lines) - 5
    assert stats["dead_by_reason"]["bad_label"] == 1 and stats["rows_dead"] == 5
    assert stats["rows_labelled"] == stats["metrics"]["rows"] == len(lines) - 5 - 40
    # metrics over the labelled rows only, against the exact NumPy ones
    table = score_table(tmp_path / "scored")
    text = (tmp_path / "mixed.tsv").read_bytes()
    labels = np.array(
        [
            float(text[o : o + 1]) if text[o : o + 1] != b"\t" else np.nan
            for o in table.column("offset").to_pylist()
        ]
    )
    known = ~np.isnan(labels)
    exact = summary_metrics(labels[known], table.column("probability").to_numpy()[known])
    metrics = stats["metrics"]
    assert abs(metrics["auc"] - exact["auc"]) <= metrics["auc_max_error"] < 1e-3
    for name in ("logloss", "mean_predicted_ctr", "observed_ctr", "calibration"):
        assert metrics[name] == pytest.approx(exact[name], rel=1e-5), name
    assert metrics["ece"] == pytest.approx(exact["ece"], abs=1e-3)


def test_unlabelled_input_has_no_metrics_and_schema_overrides_the_format(
    tmp_path: Path,
    exported_model,  # type: ignore[no-untyped-def]
) -> None:
    spec = exported_model.spec
    schema = {
        "name": "candidates",
        "columns": ["id", "clicked", *spec.field_names],
        "label": "clicked",
        "delimiter": ",",
        "header": True,
        "numeric": {f.name: f.transform for f in spec.numeric_fields},
    }
    rows = input_rows(spec, exported_model.rows_file)[:120]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(schema["columns"])
    for i, r in enumerate(rows):
        writer.writerow([f"row{i}", "", *(r[n] for n in spec.field_names)])
    (tmp_path / "candidates.csv").write_text(buffer.getvalue())
    stats = score(
        "--model",
        str(exported_model.version),
        "--input",
        str(tmp_path / "candidates.csv"),
        "--output",
        str(tmp_path / "out"),
        "--schema",
        _write_json(tmp_path / "schema.json", schema),
        "--key-columns",
        "id,offset",
        "--explain-top-k",
        "3",
    )
    assert stats["rows_scored"] == 120 and stats["rows_labelled"] == 0
    assert stats["metrics"] is None
    table = score_table(tmp_path / "out")
    assert table.column_names[:3] == ["id", "offset", "probability"]
    assert table.column_names[3:] == [
        f"pair_{i}_{c}" for i in (1, 2, 3) for c in ("source", "target", "weight")
    ]
    index = [int(k[3:]) for k in table.column("id").to_pylist()]
    expected = oracle(exported_model.version, spec, rows)
    np.testing.assert_allclose(table.column("probability").to_numpy(), expected[index], atol=1e-6)
    # explanations: as the serving predictor computes them (mean over layers and heads)
    attention = tf.saved_model.load(str(exported_model.version)).signatures["attention"]
    inputs = {
        f.name: (
            tf.constant([r[f.name] for r in rows])
            if f.is_categorical
            else tf.constant([float(r[f.name]) if r[f.name] else np.nan for r in rows])
        )
        for f in spec.fields
    }
    weights = attention(**inputs)["attention"].numpy().mean(axis=(1, 2))[index]
    names = list(spec.field_names)
    for k in (1, 2, 3):
        sources = [names.index(s) for s in table.column(f"pair_{k}_source").to_pylist()]
        targets = [names.index(t) for t in table.column(f"pair_{k}_target").to_pylist()]
        assert all(s != t for s, t in zip(sources, targets, strict=True))
        expected_weights = weights[np.arange(120), sources, targets]
        np.testing.assert_allclose(
            table.column(f"pair_{k}_weight").to_numpy(), expected_weights, atol=1e-6
        )
    weights[:, np.arange(len(names)), np.arange(len(names))] = -np.inf
    np.testing.assert_allclose(
        table.column("pair_1_weight").to_numpy(), weights.reshape(120, -1).max(axis=1), atol=1e-6
    )


def test_fail_loud_rules_as_in_preprocessing(tmp_path: Path, exported_model) -> None:  # type: ignore[no-untyped-def]
    model = ["--model", str(exported_model.version)]
    with pytest.raises(FileNotFoundError, match=r"no input file matches `--input .*nothing-\*`"):
        score(*model, "--input", str(tmp_path / "nothing-*"), "--output", str(tmp_path / "o"))
    (tmp_path / "rows.tsv").write_bytes(exported_model.rows_file.read_bytes())
    used = tmp_path / "used"
    used.mkdir()
    (used / "stats.json").write_text("{}")
    for overwrite in ([], ["--overwrite"]):  # a file no manifest names: never removed
        with pytest.raises(FileExistsError, match=r"holds 1 entry that no manifest.json names"):
            score(*model, "--input", str(tmp_path / "rows.tsv"), "--output", str(used), *overwrite)
    assert (used / "stats.json").read_text() == "{}"
    with pytest.raises(ValueError, match=r"`--key-columns` should name input columns.*'nope'"):
        score(
            *model,
            "--input",
            str(tmp_path / "rows.tsv"),
            "--output",
            str(tmp_path / "k"),
            "--key-columns",
            "offset,nope",
        )
    with pytest.raises(ValueError, match=r"`--schema .*` lacks the model's fields \['I1'"):
        score(
            *model,
            "--input",
            str(tmp_path / "rows.tsv"),
            "--output",
            str(tmp_path / "s"),
            "--schema",
            "frappe",
        )
    data = gzip.compress(exported_model.rows_file.read_bytes() * 20)
    (tmp_path / "cut.tsv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception, match=r"cut\.tsv\.gz: truncated \.gz file.* after \d+ lines"):
        score(*model, "--input", str(tmp_path / "cut.tsv.gz"), "--output", str(tmp_path / "c"))
    assert not list((tmp_path / "c").glob("scores-*"))  # no partial final shards
    assert not list((tmp_path / "c").iterdir())  # nor Beam's beam-temp-* folders


def test_score_owns_its_outputs_and_accounts_for_every_input_file(
    tmp_path: Path, exported_model
) -> None:  # type: ignore[no-untyped-def]
    from pipelines.jobs import EmptyInputError

    model = ["--model", str(exported_model.version)]
    data = tmp_path / "data"
    data.mkdir()
    rows = exported_model.rows_file.read_bytes().splitlines()
    (data / "a.tsv").write_bytes(b"\n".join([*rows[:150], b"1\t2"]) + b"\n")
    (data / "b.tsv.gz").write_bytes(gzip.compress(b"\n".join(rows[150:]) + b"\n"))
    (data / "c.tsv").write_bytes(b"")
    out = tmp_path / "out"
    stats = score(*model, "--input", f"{data}/*", "--output", str(out), "--format", "parquet")
    expected = {"a.tsv": (151, 150, 1), "b.tsv.gz": (50, 50, 0), "c.tsv": (0, 0, 0)}
    assert stats["files"] == {
        str(data / name): {"rows_read": r, "rows_scored": s, "rows_dead": d}
        for name, (r, s, d) in expected.items()
    }
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["job"] == "score"
    assert manifest["spec_fingerprint"] == exported_model.spec.fingerprint
    assert sorted(manifest["files"]) == sorted(
        p.name for p in out.iterdir() if p.name != "manifest.json"
    )
    assert any(f.endswith(".parquet") for f in manifest["files"])
    with pytest.raises(FileExistsError, match=r"files of an earlier run \(`ue score`"):
        score(*model, "--input", f"{data}/*", "--output", str(out))
    with pytest.raises(ValueError, match=r"would match the job's own outputs"):
        score(*model, "--input", f"{tmp_path}/*/*", "--output", str(tmp_path / "out2"))
    with pytest.raises(ValueError, match=r"reads 1 file inside"):
        score(*model, "--input", str(out / "stats.json"), "--output", str(out), "--overwrite")
    with pytest.raises(EmptyInputError, match=r"read 0 rows .*--allow-empty"):
        score(*model, "--input", str(data / "c.tsv"), "--output", str(tmp_path / "empty"))
    stats = score(
        *model,
        "--input",
        str(data / "c.tsv"),
        "--output",
        str(tmp_path / "empty2"),
        "--allow-empty",
    )
    assert stats["rows_read"] == 0 and stats["metrics"] is None
    # --overwrite removes the parquet shards the earlier manifest names, then writes CSV
    stats = score(*model, "--input", str(data / "a.tsv"), "--output", str(out), "--overwrite")
    assert list(stats["files"]) == [str(data / "a.tsv")]
    assert not list(out.glob("*.parquet")) and score_table(out).num_rows == 150


def test_too_many_dead_rows_fail_after_writing_scores_and_stats(
    tmp_path: Path, exported_model
) -> None:  # type: ignore[no-untyped-def]
    good = exported_model.rows_file.read_bytes().splitlines()[:100]
    (tmp_path / "bad.tsv").write_bytes(b"\n".join([*good, b"1\t2", b"1\t2"]) + b"\n")
    with pytest.raises(RuntimeError, match=r"2 of 102 rows \(2.0%\).*wrong_column_count: 2"):
        score(
            "--model",
            str(exported_model.version),
            "--input",
            str(tmp_path / "bad.tsv"),
            "--output",
            str(tmp_path / "out"),
        )
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["rows_dead"] == 2
    assert (
        score_table(tmp_path / "out").num_rows == 100 and len(dead_letters(tmp_path / "out")) == 2
    )


def test_the_newest_version_under_an_export_base_or_the_one_given(
    tmp_path: Path,
    exported_model,  # type: ignore[no-untyped-def]
) -> None:
    base = tmp_path / "export"
    for name in ("99", "100", "latest"):
        shutil.copytree(exported_model.version, base / name)
    assert resolve_model(str(base)).path == str(base / "100")
    assert resolve_model(str(base / "99")).describe()["version"] == 99
    assert resolve_model(str(base / "latest")).describe()["version"] == "latest"
    assert resolve_model(str(base)).spec == exported_model.spec
    with pytest.raises(FileNotFoundError, match=r"no SavedModel at `--model .*empty`"):
        resolve_model(str(tmp_path / "empty"))


@pytest.mark.slow
def test_preprocess_train_export_score_through_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ue.cli import main

    config = ["--seed", "5", "--weighted-top-k", "3", "--signal-scale", "2"]
    assert main(["generate", "--rows", "2000", "--out", str(tmp_path / "train.tsv"), *config]) == 0
    holdout = generate(
        400, SyntheticConfig(seed=5, weighted_top_k=3, signal_scale=2.0), start_row=2000
    ).to_tsv_bytes()
    (tmp_path / "holdout.tsv").write_bytes(holdout)
    capsys.readouterr()
    assert (
        main(
            [
                "preprocess",
                "--input",
                str(tmp_path / "train.tsv"),
                "--schema",
                "criteo",
                "--output",
                str(tmp_path / "prep"),
                "--budget",
                "100KB",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "prep"),
                "--model-dir",
                str(tmp_path / "m"),
                "--steps",
                "30",
                "--eval-every",
                "30",
                "--batch-size",
                "128",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "export",
                "--model-dir",
                str(tmp_path / "m"),
                "--export-base",
                str(tmp_path / "export"),
            ]
        )
        == 0
    )
    version = Path(capsys.readouterr().out.strip())
    assert (
        main(
            [
                "score",
                "--model",
                str(tmp_path / "export"),
                "--input",
                str(tmp_path / "holdout.tsv"),
                "--output",
                str(tmp_path / "scores"),
                "--format",
                "parquet",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model_version"] == int(version.name)
    assert summary["rows_read"] == summary["rows_scored"] == 400 and summary["rows_dead"] == 0
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(version),
                "--input",
                str(tmp_path / "holdout.tsv"),
                "--schema",
                "criteo",
            ]
        )
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    metrics = summary["metrics"]
    assert abs(metrics["auc"] - evaluated["auc"]) <= metrics["auc_max_error"]
    assert metrics["logloss"] == pytest.approx(evaluated["logloss"], rel=1e-5)
    assert metrics["calibration"] == pytest.approx(evaluated["calibration"], rel=1e-5)
    assert score_table(tmp_path / "scores").num_rows == 400
    assert (
        main(
            [
                "score",
                "--model",
                str(version),
                "--input",
                str(tmp_path / "holdout.tsv"),
                "--output",
                str(tmp_path / "other"),
                "--key-columns",
                "nope",
            ]
        )
        == 2
    )
    assert "ue score: error: `--key-columns` should name input columns" in capsys.readouterr().err


def test_run_inference_scores_a_block_per_call_with_the_model_loaded_once(
    exported_model,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that

    from pipelines.inference import BlockModelHandler, BlockScorer
    from unified_embedding.rows.textfile import LineBlock
    from unified_embedding.rows.validation import BlockValidator

    spec = exported_model.spec
    lines = exported_model.rows_file.read_bytes().splitlines(keepends=True)
    validator = BlockValidator(spec, label_required=False)
    blocks = [
        validator.validate(LineBlock("rows", 0, 1, b"".join(lines[i : i + 70])))
        for i in range(0, 200, 70)
    ]
    expected = oracle(exported_model.version, spec, input_rows(spec, exported_model.rows_file))

    def check(results: list) -> None:  # type: ignore[type-arg]
        assert sorted(len(r) for r in results) == [60, 70, 70]  # one result per block
        got = np.concatenate([r for r in sorted(results, key=lambda r: -len(r))])
        np.testing.assert_allclose(np.sort(got), np.sort(expected), atol=1e-6)

    loads = []
    load = BlockScorer.__init__
    monkeypatch.setattr(BlockScorer, "__init__", lambda *a, **k: loads.append(1) or load(*a, **k))
    handler = BlockModelHandler(str(exported_model.version), spec)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 1}
    options = beam.options.pipeline_options.PipelineOptions(["--runner=FnApiRunner"])
    with TestPipeline(options=options) as pipeline:
        probabilities = (
            pipeline
            | beam.Create(blocks)
            | RunInference(handler)
            | beam.Map(lambda result: result.inference.probability)
        )
        assert_that(probabilities, check)
    assert len(loads) == 1  # three blocks, one model


def test_score_reports_the_metrics_evaluate_reports_and_one_class_as_null(
    tmp_path: Path,
    exported_model,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipelines.score import main
    from unified_embedding.evaluation.evaluate import evaluate, print_report

    model = ["--model", str(exported_model.export_base)]  # a base: its newest version
    rows = str(exported_model.rows_file)
    assert main([*model, "--input", rows, "--output", str(tmp_path / "all")]) == 0
    out, err = capsys.readouterr()
    scored = json.loads(out)
    assert scored["model_version"] == int(exported_model.version.name)
    evaluated = evaluate(exported_model.export_base, rows)
    assert evaluated["version"] == scored["model_version"] and evaluated["rows"] == 200
    assert set(scored["metrics"]) == set(evaluated) - {"model", "version"}
    for name, value in scored["metrics"].items():
        assert value == pytest.approx(evaluated[name], rel=1e-6, abs=1e-9), name
    assert "INFO" not in err

    lines = exported_model.rows_file.read_bytes().splitlines()
    negatives = [line for line in lines if line.startswith(b"0\t")]
    (tmp_path / "negatives.tsv").write_bytes(b"\n".join(negatives) + b"\n")
    one_class = ["--input", str(tmp_path / "negatives.tsv")]
    assert main([*model, *one_class, "--output", str(tmp_path / "neg")]) == 0
    out, err = capsys.readouterr()
    metrics = json.loads(out)["metrics"]
    assert metrics["auc"] is None and metrics["calibration"] is None and metrics["logloss"] > 0
    assert "ue score: warning: AUC is undefined" in err and "calibration" in err
    assert "NaN" not in (tmp_path / "neg" / "stats.json").read_text()
    report = evaluate(exported_model.version, tmp_path / "negatives.tsv")
    assert report["auc"] is None and report["logloss"] == pytest.approx(metrics["logloss"])
    print_report(report)
    out, err = capsys.readouterr()
    assert json.loads(out)["auc"] is None and "ue evaluate: warning: AUC is undefined" in err


def test_main_refuses_a_missing_model_or_input_before_beam(
    tmp_path: Path,
    exported_model,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipelines.score import main

    rows = ["--input", str(exported_model.rows_file), "--output", str(tmp_path / "o")]
    assert main(["--model", str(tmp_path / "nothing"), *rows]) == 2
    assert "ue score: error: no SavedModel at `--model" in capsys.readouterr().err
    missing = ["--input", str(tmp_path / "x.tsv"), "--output", str(tmp_path / "o")]
    assert main(["--model", str(exported_model.version), *missing]) == 2
    assert "ue score: error: no input file matches" in capsys.readouterr().err
    assert main(["--model", str(exported_model.version), *rows, "--explain-top-k", "-1"]) == 2
    assert "`--explain-top-k` should be non-negative" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
