"""Multi-size probes end to end: records with 4 probes -> `ue train --probes auto` -> export.

The exported model hashes each field's own k_f probes in-graph; it must score raw rows exactly
as the trained model scores the records (which hold 4 fingerprints per field, of which the
run uses the first k_f). With no budget given anywhere, the table is sized from the data.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

from pipelines.preprocess import run as preprocess
from unified_embedding.budget.plan import data_budget, plan_budget
from unified_embedding.budget.probes import auto_probes, with_probes
from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.evaluation.evaluate import raw_batches
from unified_embedding.exported.writer import export
from unified_embedding.rows.reader import parse_bytes
from unified_embedding.rows.records import read_blocks
from unified_embedding.synthetic import SyntheticConfig, generate
from unified_embedding.training.loop import TrainJob, load_trained, train

ROWS = 2000


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("probes")
    raw_file = tmp / "rows.tsv"
    raw_file.write_bytes(generate(ROWS, SyntheticConfig(seed=7)).to_tsv_bytes())
    prep = tmp / "prep"
    preprocess(
        [
            "--input",
            str(raw_file),
            "--schema",
            "criteo",
            "--output",
            str(prep),
            "--eval-fraction",
            "0.2",
            "--probes",
            "4",
        ]
    )
    job = TrainJob(
        str(prep),
        str(tmp / "model"),
        probes="auto",
        steps=20,
        eval_every=10,
        checkpoint_every=10,
        batch_size=128,
    )
    train(job)
    model, run = load_trained(job.model_dir)
    version = export(model, run.feature_spec(), tmp / "export")
    return {
        "raw_file": raw_file,
        "prep": prep,
        "model": model,
        "spec": run.feature_spec(),
        "version": version,
    }


def test_without_budgets_the_table_is_sized_from_the_data(auto_run: dict) -> None:
    prep = auto_run["prep"]
    spec = FeatureSpec.load(prep / "spec.json")
    stats = json.loads((prep / "stats.json").read_text())
    distinct = {f.name: stats["fields"][f.name]["approx_distinct"] for f in spec.categorical_fields}
    hashed_under = with_probes(criteo(), 4)  # the contract the records were hashed under
    assert stats["data_budget_bytes"] == data_budget(hashed_under, distinct)
    # spec.json states the table training will use: the data budget's
    data_table = plan_budget(hashed_under, stats["data_budget_bytes"]).table
    assert spec == hashed_under.replace(table=data_table)
    run_spec = auto_run["spec"]  # auto probes train on the very table spec.json states
    assert run_spec.table == spec.table
    assert run_spec.table.rows < criteo().table.rows


def test_auto_probes_follow_the_distinct_counts(auto_run: dict) -> None:
    stats = json.loads((auto_run["prep"] / "stats.json").read_text())
    probes = {f.name: f.probes for f in auto_run["spec"].categorical_fields}
    expected = {n: auto_probes(stats["fields"][n]["approx_distinct"]) for n in probes}
    assert probes == expected and len(set(probes.values())) > 1  # sizes really differ


def test_export_with_auto_probes_scores_raw_rows_as_the_records_say(auto_run: dict) -> None:
    spec, data_spec = auto_run["spec"], FeatureSpec.load(auto_run["prep"] / "spec.json")
    rows = parse_bytes(criteo(), auto_run["raw_file"].read_bytes())
    (raw,) = list(raw_batches(spec, rows, batch_size=len(rows)))
    loaded = tf.saved_model.load(str(auto_run["version"]))
    ids = {k: v.numpy() for k, v in loaded.signatures["encode"](**raw).items()}
    served = loaded.signatures["serving_default"](**raw)["probability"].numpy()

    def key(columns: dict, i: int) -> tuple:  # the run's k_f probes of each field
        return tuple(
            (None if np.isnan(columns[f.name][i]) else float(columns[f.name][i]))
            if f.kind == "numeric"
            else columns[f.name][i][: f.probes].tobytes()
            for f in spec.fields
        )

    from_raw = {key(ids, i): served[i] for i in range(ROWS)}
    records = {}
    probabilities = tf.function(auto_run["model"].probabilities)  # as the export: a graph
    for batch in read_blocks(data_spec, str(auto_run["prep"] / "*.tfrecord.gz")).batch(500):
        assert batch["C1"].shape[-1] == 4  # the records hold 4 probes
        scores = probabilities(batch).numpy()[:, 0]
        columns = {k: v.numpy() for k, v in batch.items()}
        records.update({key(columns, i): scores[i] for i in range(len(scores))})
    assert from_raw.keys() == records.keys()
    np.testing.assert_allclose(
        [records[k] for k in from_raw], list(from_raw.values()), rtol=1e-5, atol=1e-6
    )
