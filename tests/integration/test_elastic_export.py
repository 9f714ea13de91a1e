"""One nested run, exported at several table sizes: `ue train --nested-widths` -> `ue export
--table-width/--table-dtype` -> scores equal the in-memory model read at that width and dtype;
`ue evaluate` and `ue score` take the export unchanged; a width never trained is refused, and so
is a warm start from a cut table."""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from pipelines.preprocess import run as preprocess
from pipelines.score import run as score
from tests.integration.test_train_export import raw_inputs
from ue.cli import main
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.evaluation.evaluate import evaluate
from unified_embedding.exported.model import read_spec
from unified_embedding.exported.table_format import served_model
from unified_embedding.layers.served_table import dequantize_rows
from unified_embedding.models.config import AutoIntConfig
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.loop import TrainJob, load_trained, train
from unified_embedding.training.warm_start import IncompatibleSource

ROWS = 2000
WIDTHS = (2, 4, 8)


@pytest.fixture(scope="module")
def nested(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("nested")
    raw_file = tmp / "rows.tsv"
    raw_file.write_bytes(generate(ROWS, SyntheticConfig(seed=3, signal_scale=2.0)).to_tsv_bytes())
    prep = tmp / "prep"
    preprocess(["--input", str(raw_file), "--schema", "criteo", "--output", str(prep)])
    job = TrainJob(
        str(prep),
        str(tmp / "model"),
        budget="100KB",
        steps=40,
        eval_every=40,
        checkpoint_every=40,
        batch_size=128,
        model=AutoIntConfig(num_layers=1, nested_widths=WIDTHS),
    )
    summary = train(job)
    model, run = load_trained(job.model_dir)
    assert model.nested_widths == WIDTHS and run.feature_spec().table.width == 8
    return {
        "tmp": tmp,
        "raw_file": raw_file,
        "model": model,
        "spec": run.feature_spec(),
        "job": job,
        "summary": summary,
    }


def test_the_training_summary_gives_the_auc_at_every_width(nested: dict) -> None:
    evaluated = nested["summary"]["eval"]
    aucs = [evaluated[f"auc_at_width_{w}"] for w in WIDTHS]
    assert all(0.5 < auc <= 1.0 for auc in aucs), evaluated
    # exact at full width; the training metric's AUC is within its histogram's bound of it
    assert aucs[-1] == pytest.approx(evaluated["auc"], abs=evaluated["auc_bound"] + 1e-6)


def export_cli(nested: dict, *flags: str) -> Path:
    base = nested["tmp"] / "export"
    argv = ["export", "--model-dir", nested["job"].model_dir, "--export-base", str(base), *flags]
    assert main(argv) == 0
    return max(base.iterdir(), key=lambda p: int(p.name))


@pytest.mark.parametrize(("width", "dtype"), [(2, "float32"), (4, "int8"), (None, "int8")])
def test_an_export_scores_as_the_model_read_at_its_width_and_dtype(
    nested: dict, width: int | None, dtype: str
) -> None:
    flags = ["--table-dtype", dtype] + ([] if width is None else ["--table-width", str(width)])
    version = export_cli(nested, *flags)
    spec = read_spec(version)
    assert (spec.table.served_width, spec.table.served_dtype) == (width, dtype)
    raw = raw_inputs(spec, nested["raw_file"])
    loaded = tf.saved_model.load(str(version))
    got = loaded.signatures["serving_default"](**raw)["probability"].numpy()
    served, _ = served_model(nested["model"], nested["spec"], width, dtype)
    expected = tf.function(served.probabilities)(encode_features(spec, raw)).numpy()[:, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if dtype == "float32":  # the trained model, its table masked to the width
        masked = tf.function(lambda f: nested["model"](f, width=width))
        logits = masked(encode_features(nested["spec"], raw)).numpy()[:, 0]
        np.testing.assert_allclose(got, tf.sigmoid(logits).numpy(), rtol=1e-5, atol=1e-6)
    else:  # the trained model, its table rows rounded as the export stores them
        (table,) = served.embedding.served_tables
        trained = nested["model"].embedding.tables[0]
        rounded = dequantize_rows(table.values.numpy(), table.scale_offset.numpy())
        assert np.abs(rounded - trained.numpy()[:, : table.width]).max() < 0.01
    expected_signatures = {
        "serving_default",
        "from_ids",
        "from_examples",
        "packed",
        "attention",
        "encode",
    }
    assert set(loaded.signatures) == expected_signatures
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    report = evaluate(version, nested["raw_file"], "criteo")
    assert report["rows"] == ROWS and 0.5 < report["auc"] <= 1.0


def test_an_int8_export_stores_about_a_quarter_of_the_table(nested: dict) -> None:
    whole = export_cli(nested)
    int8 = export_cli(nested, "--table-dtype", "int8")

    rows = nested["spec"].table.rows

    def table_bytes(version: Path) -> int:  # the variables with a row per table row
        reader = tf.train.load_checkpoint(str(version / "variables" / "variables"))
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
        return sum(
            int(np.prod(shape)) * dtypes[k].size
            for k, shape in shapes.items()
            if shape and shape[0] == rows
        )

    assert table_bytes(int8) / table_bytes(whole) == pytest.approx((8 + 4) / (4 * 8))


def test_ue_score_takes_a_narrow_int8_export(nested: dict, tmp_path: Path) -> None:
    version = export_cli(nested, "--table-width", "2", "--table-dtype", "int8")
    stats = score(
        ["--model", str(version), "--input", str(nested["raw_file"]), "--output", str(tmp_path)]
    )
    assert stats["rows_read"] == stats["rows_scored"] == ROWS and stats["rows_dead"] == 0


def test_a_width_the_run_was_not_trained_at_is_refused(nested: dict, capsys) -> None:  # type: ignore[no-untyped-def]
    base = nested["tmp"] / "refused"
    argv = ["export", "--model-dir", nested["job"].model_dir, "--export-base", str(base)]
    assert main([*argv, "--table-width", "1"]) == 2
    assert "trained at: [2, 4, 8]" in capsys.readouterr().err
    assert not base.exists() or not list(base.iterdir())


def test_a_warm_start_from_a_cut_table_is_refused(nested: dict, tmp_path: Path) -> None:
    version = export_cli(nested, "--table-width", "4")
    job = TrainJob(
        str(nested["job"].data_dir), str(tmp_path / "warm"), warm_start_from=str(version), steps=1
    )
    with pytest.raises(IncompatibleSource, match=r"serves its table cut or quantized \(width 4"):
        train(job)


def test_spec_json_records_the_served_table_and_keeps_whole_fingerprints(nested: dict) -> None:
    spec: FeatureSpec = nested["spec"]
    whole = json.loads(spec.to_json())
    assert "served_width" not in whole["table"] and "served_dtype" not in whole["table"]
    version = export_cli(nested, "--table-width", "4", "--table-dtype", "int8")
    saved = json.loads((version / "assets" / "spec.json").read_text())
    assert saved["table"] == {**whole["table"], "served_width": 4, "served_dtype": "int8"}
    assert FeatureSpec.from_dict(saved).table.served_width == 4
