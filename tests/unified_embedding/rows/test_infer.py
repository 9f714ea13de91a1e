"""`ue schema infer`: the proposed schema names each column's kind by the documented rules, loads
with `load_schema`, and reads its own file with no dead row (the reader stops at the first one).

The hand-written file of most tests (CSV with a header, 400 rows):

    column   values                               proposed
    id       0, 1, 2, ...  (unique)               ignore (a row id)
    clicked  0/1, 2% ones                         label (by name)
    visits   0..~5000, long tail, "NA" in some    numeric log1p; "NA" missing
    price    9.99, 120.5, ...                     numeric (fractions)
    zip      "00000", "02111", ...                categorical (leading zeros)
    code     15701..15720 (20 codes)              categorical (integers without a tail)
    city     "Paris, FR" (quoted), "null" in some categorical; "null" missing
    genres   "rock|jazz", "folk", ...             multi_valued "|"
    device   phone / tablet / desktop             categorical with a vocabulary
"""

import bz2
import csv
import gzip
import io
import json
import lzma
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from unified_embedding.contract.schemas import load_schema
from unified_embedding.rows.column_kinds import Column, decide
from unified_embedding.rows.infer import InferError, propose
from unified_embedding.rows.reader import read_rows
from unified_embedding.rows.sample import SampleConfig, SampleError, looks_like_header, read_sample
from unified_embedding.rows.schema_cli import main, schema_json

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


CITIES = ["Paris, FR", "Rome", 'The "Hub"', *(f"city{i}" for i in range(12))]


def user_rows(rows: int = 400, seed: int = 0) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    visits = np.floor(rng.pareto(1.2, rows) * 3).astype(int)
    out = []
    for i in range(rows):
        out.append(
            [
                str(i),
                "1" if rng.random() < 0.02 else "0",
                "NA" if i % 17 == 3 else str(visits[i]),
                f"{rng.choice([9.99, 120.5, 3.25, 47.0, 0.5])}",
                f"{rng.integers(0, 40) * 2111:05d}",
                str(15701 + rng.integers(0, 20)),
                "null" if i % 23 == 5 else str(rng.choice(CITIES)),
                "|".join(rng.choice(["rock", "jazz", "folk", "pop"], rng.integers(1, 3))),
                str(rng.choice(["phone", "tablet", "desktop"])),
            ]
        )
    return out


HEADER = ["id", "clicked", "visits", "price", "zip", "code", "city", "genres", "device"]


def write_csv(path: Path, rows: list[list[str]], header: list[str] | None = HEADER) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(out.getvalue())
    return path


def infer(path: Path, **config: object) -> dict:
    label = config.pop("label", None)
    sample = read_sample(path, SampleConfig(**config))  # type: ignore[arg-type]
    proposal = propose(sample, label=label)  # type: ignore[arg-type]
    assert proposal.warnings == []
    return proposal.schema


def assert_reads_every_row(schema: dict, data: Path, tmp_path: Path, rows: int) -> None:
    """The schema file loads and the whole file reads without a dead row."""
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(schema_json(schema))
    spec = load_schema(schema_file)
    assert len(read_rows(spec, data)) == rows


def test_a_csv_with_a_header_gets_each_columns_kind(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "clicks.csv", user_rows())
    schema = infer(data)
    assert schema == {
        "name": "clicks",
        "columns": HEADER,
        "label": "clicked",
        "delimiter": ",",
        "header": True,
        "ignore": ["id"],
        "numeric": {"visits": "log1p", "price": "identity"},
        "multi_valued": {"genres": "|"},
        "vocabulary": {"device": ["desktop", "phone", "tablet"]},
        "missing": ["null", "NA"],
    }
    assert_reads_every_row(schema, data, tmp_path, 400)


def test_a_headerless_tsv_names_columns_c0_and_needs_the_label(tmp_path: Path) -> None:
    rows = [[r[1], r[2], r[5], r[8]] for r in user_rows()]  # clicked, visits, code, device
    data = tmp_path / "clicks.tsv"
    data.write_text("".join("\t".join(r) + "\n" for r in rows))
    with pytest.raises(InferError, match=r"--label NAME.*only 0 and 1: \['c0'\]"):
        infer(data)
    schema = infer(data, label="c0")
    assert (schema["columns"], schema["delimiter"], schema["header"]) == (
        ["c0", "c1", "c2", "c3"],
        "\t",
        False,
    )
    assert schema["numeric"] == {"c1": "log1p"} and schema["missing"] == ["NA"]
    assert_reads_every_row(schema, data, tmp_path, 400)


@pytest.mark.parametrize(
    ("extension", "compress"), [("gz", gzip.compress), ("bz2", bz2.compress), ("xz", lzma.compress)]
)
def test_compressed_files_get_the_plain_files_schema(
    tmp_path: Path, extension: str, compress: Callable[[bytes], bytes]
) -> None:
    plain = write_csv(tmp_path / "clicks.csv", user_rows())
    packed = tmp_path / f"clicks.csv.{extension}"
    packed.write_bytes(compress(plain.read_bytes()))
    assert infer(packed) == infer(plain)
    assert_reads_every_row(infer(packed), packed, tmp_path, 400)


def test_delimiters_are_guessed_and_quotes_respected(tmp_path: Path) -> None:
    rows = [["1" if i % 7 == 0 else "0", f"a{i % 5}", f"x;{i % 3}"] for i in range(60)]
    data = tmp_path / "semi.txt"
    data.write_text("label;a;b\n" + "".join(f'{r[0]};{r[1]};"{r[2]}"\n' for r in rows))
    schema = infer(data)
    assert schema["delimiter"] == ";" and schema["columns"] == ["label", "a", "b"]
    assert schema["multi_valued"] == {}  # ";" is the delimiter, never a separator
    assert_reads_every_row(schema, data, tmp_path, 60)


def test_a_low_ctr_label_is_found_by_name_and_not_by_position(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    lines = [f"{i % 2},u{rng.integers(0, 50)},{int(rng.random() < 0.004)}" for i in range(2000)]
    data = tmp_path / "rare.csv"
    data.write_text("flag,user,Click\n" + "\n".join(lines) + "\n")
    schema = infer(data)
    assert schema["label"] == "Click"  # `flag` holds only 0/1 too, but is not named like one
    assert_reads_every_row(schema, data, tmp_path, 2000)


def test_the_sample_is_the_first_rows_and_dead_rows_are_reported(tmp_path: Path) -> None:
    data = tmp_path / "broken.csv"
    lines = [f"{i % 2},v{i % 9}" for i in range(50)]
    lines[10] = "1,v1,extra"
    data.write_text("label,value\n" + "\n".join(lines) + "\n")
    sample = read_sample(data, SampleConfig(sample_rows=30))
    assert (sample.lines, sample.rows, sample.bad_lines) == (30, 29, 1)
    (warning,) = propose(sample).warnings
    assert warning.startswith("1 of 30 sampled rows would be dead letters (wrong_column_count)")
    assert "line 12: expected 2 columns, found 3" in warning
    with pytest.raises(InferError, match=r"`--label` should name a column.*`--label=y`"):
        propose(sample, label="y")


def test_a_label_that_is_not_0_or_1_is_kept_and_warned_about(tmp_path: Path) -> None:
    named = tmp_path / "named.csv"
    named.write_text("target,item\n" + "".join(f"{i % 2 or ''},i{i % 4}\n" for i in range(30)))
    with pytest.raises(InferError, match=r"`target` is named like a label .* \(e\.g\. ''\)"):
        propose(read_sample(named, SampleConfig()))
    data = tmp_path / "rating.csv"
    data.write_text("rating,item\n" + "".join(f"{i % 3},i{i % 4}\n" for i in range(30)))
    proposal = propose(read_sample(data, SampleConfig()), label="rating")
    assert proposal.schema["label"] == "rating"
    (warning,) = proposal.warnings
    assert "(bad_label)" in warning and "Received: '2'" in warning


def test_long_cells_raise_max_field_chars_and_bad_names_are_ignored(tmp_path: Path) -> None:
    data = tmp_path / "text.csv"
    long = "w" * 1500
    data.write_text(
        "label,user id,note\n" + "".join(f"{i % 2},u{i},{long}{i % 3}\n" for i in range(40))
    )
    schema = infer(data)
    assert schema["max_field_chars"] == 3002 and schema["ignore"] == ["user id"]
    assert_reads_every_row(schema, data, tmp_path, 40)


def test_header_guess() -> None:
    import pyarrow as pa

    below = pa.table({"c0": ["0", "1"], "c1": ["a", "b"]})
    assert looks_like_header(["label", "city"], below)
    assert not looks_like_header(["0", "rome"], below)  # a number: the label of a data row
    assert not looks_like_header(["label", "label"], below)  # names are distinct
    words = pa.table({"c0": ["x", "y"], "c1": ["a", "b"]})
    assert not looks_like_header(["x", "b"], words)  # cells that recur below are data
    assert looks_like_header(["kind", "city"], words)


def column(values: list[str], counts: list[int] | None = None, name: str = "f") -> Column:
    import pyarrow as pa

    counts = counts or [1] * len(values)
    return Column(name, sum(counts), pa.array(values, pa.string()), np.array(counts, np.int64))


@pytest.mark.parametrize(
    ("values", "counts", "kind", "transform"),
    [
        # a count: from 0, max >= 20 x median, every digit width from 1 to 3 present
        ([str(v) for v in range(30)] + ["150", "900"], [50] * 30 + [1, 1], "numeric", "log1p"),
        # codes far from 0 (Avazu's C14)
        ([str(15700 + v) for v in range(40)], None, "categorical", "identity"),
        # a sentinel beside six-digit codes (Avazu's C20): widths 1 and 6, none between
        (["-1"] + [str(100000 + v) for v in range(30)], [60] + [1] * 30, "categorical", "identity"),
        (["0.5", "1.25", "3"], None, "numeric", "identity"),
        (["0.5", "1.25", "300"], None, "numeric", "log1p"),
        (["1e40", "2"], None, "categorical", "identity"),  # beyond float32
        (["007", "12"] + [str(v) for v in range(40)], None, "categorical", "identity"),
    ],
)
def test_numeric_rules(
    values: list[str], counts: list[int] | None, kind: str, transform: str
) -> None:
    decision = decide(column(values, counts), ",")
    assert (decision.kind, decision.transform) == (kind, transform), decision.why


def test_row_ids_and_vocabularies_need_enough_rows() -> None:
    assert decide(column([str(v) for v in range(100)]), ",").kind == "ignore"
    assert decide(column([str(v) for v in range(99)]), ",").kind != "ignore"  # too few to tell
    assert decide(column(["a", "b"], [20, 20]), ",").vocabulary == ("a", "b")
    assert decide(column(["a", "b"], [20, 19]), ",").vocabulary is None


def test_cli_writes_the_schema_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_csv(tmp_path / "clicks.csv", user_rows())
    assert main(["infer", str(data)]) == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out) == infer(data)
    lines = printed.err.splitlines()
    assert all(line.startswith("# ") for line in lines)
    assert any(line.split()[1:3] == ["visits", "numeric"] for line in lines)
    out = tmp_path / "schema.json"
    assert main(["infer", str(data), "--out", str(out), "--sample-rows", "100"]) == 0
    assert capsys.readouterr().out == ""
    assert load_schema(out).label == "clicked"


def test_cli_refuses_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["infer", str(tmp_path / "absent.csv")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    data = tmp_path / "x.tsv"
    data.write_text("0\ta\n1\tb\n")
    assert main(["infer", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ue schema infer: error: no column named like a label")
    assert err.count("\n") == 1
    for tab in ("\\t", "tab"):  # how a shell passes a tab
        assert main(["infer", str(data), "--delimiter", tab, "--label", "c0"]) == 0
        assert json.loads(capsys.readouterr().out)["delimiter"] == "\t"


REAL = {
    "criteo": ("criteo/criteo_kaggle_head10k.tsv", ["--label", "c0"]),
    "avazu": ("avazu/avazu_train_head10k.csv", []),
    "frappe": ("frappe/frappe_train.csv", []),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_samples(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, flags = REAL[name]
    data = SHARED_DATA / path
    if not data.is_file():
        pytest.skip(f"no {name} sample under {SHARED_DATA}")
    out = tmp_path / "schema.json"
    assert main(["infer", str(data), "--out", str(out), *flags]) == 0
    assert "warning" not in capsys.readouterr().err
    schema = json.loads(out.read_text())
    spec = load_schema(out)
    rows = read_rows(spec, data)  # stops at the first dead row
    assert len(rows) == sum(1 for _ in data.open()) - schema["header"]
    if name == "criteo":  # I1..I13 are counts but I10 (6 values); C1..C26 hex codes
        assert list(schema["numeric"]) == [f"c{i}" for i in range(1, 14) if i != 10]
    elif name == "avazu":
        assert (schema["label"], schema["ignore"], schema["numeric"]) == ("click", ["id"], {})
    else:
        assert (schema["label"], schema["ignore"], schema["numeric"]) == ("label", [], {})


def test_the_preprocessing_job_reads_the_file_with_the_proposed_schema(tmp_path: Path) -> None:
    from pipelines.preprocess import run as preprocess

    data = write_csv(tmp_path / "clicks.csv", user_rows())
    schema = tmp_path / "schema.json"
    assert main(["infer", str(data), "--out", str(schema)]) == 0
    stats = preprocess(
        ["--input", str(data), "--schema", str(schema), "--output", str(tmp_path / "prep")]
    )
    assert (stats["rows_read"], stats["rows_dead"]) == (400, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no line"),
        ("label,city\n", "a header line and no row"),
        ("a\nb\n", "does not split into columns on ','; pass `--delimiter`"),
    ],
)
def test_files_without_rows_or_columns_are_refused(tmp_path: Path, text: str, message: str) -> None:
    data = tmp_path / "x.csv"
    data.write_text(text)
    with pytest.raises(SampleError, match=message):
        read_sample(data, SampleConfig())


def test_a_bom_crlf_file_with_quoted_names_reads_like_a_plain_one(tmp_path: Path) -> None:
    data = tmp_path / "bom.csv"
    rows = "".join(f'{i % 2},"u{i % 7}, x",{i % 5}\r\n' for i in range(40))
    data.write_bytes(b"\xef\xbb\xbf" + ('"label","user",rank\r\n' + rows).encode())
    schema = infer(data)
    assert (schema["columns"], schema["header"]) == (["label", "user", "rank"], True)
    assert_reads_every_row(schema, data, tmp_path, 40)
