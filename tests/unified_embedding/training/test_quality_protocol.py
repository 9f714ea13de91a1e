"""The quality protocol (benchmarks/quality.py), the table's weight decay and the demo's
seed comparison: splits, summaries and oracles on tiny inputs."""

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import tensorflow as tf

from ue.demo import compare, comparison_line
from unified_embedding.budget.layouts import get_layout
from unified_embedding.budget.plan import plan_budget
from unified_embedding.contract.schemas import criteo
from unified_embedding.models.autoint import AutoIntConfig, build_autoint
from unified_embedding.rows.reader import parse_bytes
from unified_embedding.synthetic import generate
from unified_embedding.training.experiment import (
    TrainConfig,
    build_embedding,
    encode,
    make_optimizer,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def quality() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quality", ROOT / "benchmarks" / "quality.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_split_is_80_10_10_disjoint_and_fixed(quality: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / quality.REAL_SAMPLES["criteo"]
    path.parent.mkdir(parents=True)
    path.write_bytes(generate(1000).to_tsv_bytes())
    first, again = quality.split("criteo", tmp_path), quality.split("criteo", tmp_path)
    parts = [first.train, first.validation, first.test]
    assert [len(p) for p in parts] == [800, 100, 100]
    # A row's id: every cell joined (the generated rows are distinct); no row in two parts.
    ids = [
        set(map("/".join, zip(*(c.astype(str) for c in p.columns.values()), strict=True)))
        for p in parts
    ]
    assert [len(i) for i in ids] == [800, 100, 100] and len(set.union(*ids)) == 1000
    np.testing.assert_array_equal(first.test.columns["C26"], again.test.columns["C26"])
    assert quality.split("frappe", tmp_path) is None  # absent sample


def test_missing_data_dir_prints_skipped(
    quality: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert quality.main(["--stage", "test", "--data-dir", str(tmp_path / "none")]) == 0
    assert '"skipped"' in capsys.readouterr().out


@pytest.fixture(scope="module")
def peer_quality(quality: ModuleType) -> ModuleType:
    path = ROOT / "benchmarks" / "peer_quality.py"
    spec = importlib.util.spec_from_file_location("peer_quality", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peer_inputs_are_train_vocabularies_and_train_ranges(
    peer_quality: ModuleType, quality: ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / quality.REAL_SAMPLES["criteo"]
    path.parent.mkdir(parents=True)
    path.write_bytes(generate(400).to_tsv_bytes())
    data = quality.split("criteo", tmp_path)
    vocab, ranges = peer_quality.vocabularies(data), peer_quality.numeric_range(data)
    assert set(vocab["C1"]) == set(data.train.columns["C1"])  # train values only, ids from 1
    assert sorted(vocab["C1"].values()) == list(range(1, len(vocab["C1"]) + 1))
    train = peer_quality.peer_inputs(data.train, vocab, ranges)
    assert train["I1"].min() == 0.0 and train["I1"].max() == 1.0  # min-max on the train rows
    test = peer_quality.peer_inputs(data.test, vocab, ranges)
    unseen = {n: ~np.isin(data.test.columns[n], list(ids)) for n, ids in vocab.items()}
    name = max(unseen, key=lambda n: unseen[n].sum())  # a field with test values unseen in train
    assert unseen[name].any() and np.all(test[name][unseen[name], 0] == 0)  # the unseen id
    assert np.all(test[name][~unseen[name], 0] > 0)


def test_peer_quality_skips_without_samples(
    peer_quality: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "skipped" in peer_quality.run(["--data-dir", str(tmp_path / "none")])
    assert '"skipped"' in capsys.readouterr().out


def test_summarise_is_mean_and_sample_std_over_seeds(quality: ModuleType) -> None:
    aucs, calibrations = [0.70, 0.72, 0.74], [0.9, 1.0, 1.2]
    runs = [
        {
            "dataset": "criteo",
            "candidate": "defaults",
            "seed": s,
            "embedding_params": 10,
            "auc": a,
            "logloss": 0.5,
            "calibration": c,
            "ece": 0.01,
            "best_pass": 3,
        }
        for s, (a, c) in enumerate(zip(aucs, calibrations, strict=True))
    ]
    (row,) = quality.summarise(runs)
    assert row["auc_mean"] == pytest.approx(np.mean(aucs), abs=1e-4)
    assert row["auc_std"] == pytest.approx(np.std(aucs, ddof=1), abs=1e-4)
    assert row["calibration_std"] == pytest.approx(np.std(calibrations, ddof=1), abs=1e-4)
    assert row["peer_auc"] == 0.7184 and row["seeds"] == 3


def test_grid_varies_one_factor_at_a_time(quality: ModuleType) -> None:
    base = quality.Candidate("defaults", AutoIntConfig(), TrainConfig())
    candidates = quality.grid(base)
    assert len({c.name for c in candidates}) == len(candidates)
    for c in candidates[1:]:
        moved = (c.model != base.model, c.train != base.train, c.plateau_decay != 1.0)
        assert sum(moved) == 1, c.name  # exactly one of the three moved


def test_table_weight_decay_is_validated() -> None:
    with pytest.raises(ValueError, match=re.escape("`table_weight_decay=-0.1`")):
        TrainConfig(table_weight_decay=-0.1)


def _step(decay: float) -> tuple[np.ndarray, np.ndarray]:
    """The unified table before and after one training step."""
    spec = criteo()
    tf.keras.utils.set_random_seed(0)
    embedding = build_embedding("unified", spec, plan_budget(spec, 10_000))
    model = build_autoint(embedding, AutoIntConfig(num_layers=1))
    batch = encode(spec, parse_bytes(spec, generate(32).to_tsv_bytes()))
    model(batch)
    config = TrainConfig(table_learning_rate=0.5, table_weight_decay=decay)
    model.compile(optimizer=make_optimizer(model, config, "unified"))
    # The shared table: the largest of the variables sparse Adagrad trains.
    table = max(get_layout("unified").table_variables(model.embedding), key=lambda v: v.shape[0])
    before = table.numpy().copy()
    model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    return before, table.numpy()


def test_table_weight_decay_shrinks_rows_a_step_does_not_touch() -> None:
    before, plain = _step(0.0)
    same, decayed = _step(0.1)
    np.testing.assert_array_equal(before, same)  # same seed, same initial table
    untouched = np.all(plain == before, axis=1)
    assert 0 < untouched.sum() < len(before)
    # Decoupled decay: row -= lr * decay * row on every row, looked up or not.
    np.testing.assert_allclose(decayed[untouched], before[untouched] * (1 - 0.5 * 0.1), rtol=1e-6)


def test_decay_on_plateau_scales_every_optimizer_only_after_no_gain(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from unified_embedding.training.callbacks import DecayOnPlateau

    spec = criteo()
    model = build_autoint(
        build_embedding("unified", spec, plan_budget(spec, 10_000)), AutoIntConfig(num_layers=1)
    )
    model(encode(spec, parse_bytes(spec, generate(8).to_tsv_bytes())))
    model.compile(optimizer=make_optimizer(model, TrainConfig(), "unified"))
    table, dense = model.optimizer.optimizers

    def rates() -> tuple[float, float]:
        return float(table.learning_rate.numpy()), float(dense.learning_rate.numpy())

    decay = DecayOnPlateau(0.2)
    decay.set_model(model)
    decay.on_train_begin()
    for epoch, val_auc in enumerate([0.70, 0.72]):  # gains: unchanged
        decay.on_epoch_end(epoch, {"val_auc": val_auc})
    assert rates() == pytest.approx((1.0, 5e-3))
    decay.on_epoch_end(2, {"val_auc": 0.72})  # no gain (equal is none)
    assert rates() == pytest.approx((0.2, 1e-3))
    assert "val_auc 0.7200 not above 0.7200: learning rates x0.2" in capsys.readouterr().err
    decay.on_epoch_end(3, {"val_auc": 0.71})
    decay.on_epoch_end(4, {"val_auc": 0.73})  # a gain again: unchanged
    decay.on_epoch_end(5, {"loss": 0.4})  # no evaluation in the logs: unchanged
    assert rates() == pytest.approx((0.04, 2e-4))
    # 1 turns it off; outside (0, 1] is refused, naming the value.
    off = DecayOnPlateau(1.0)
    off.set_model(model)
    off.on_epoch_end(0, {"val_auc": 0.7})
    off.on_epoch_end(1, {"val_auc": 0.6})
    assert rates() == pytest.approx((0.04, 2e-4))
    with pytest.raises(ValueError, match=re.escape("Received: `1.5`")):
        DecayOnPlateau(1.5)
    from unified_embedding.training.job import TrainJob

    with pytest.raises(ValueError, match=re.escape("`--plateau-decay` should be in (0, 1]")):
        TrainJob("d", "m", plateau_decay=0.0)


def test_demo_compare_pairs_seeds_and_names_the_spread() -> None:
    unified, per_feature = [0.74, 0.75, 0.76], [0.72, 0.70, 0.74]

    def runs(aucs: list[float]) -> dict[str, list[dict[str, dict[str, float]]]]:
        return {"runs": [{"evaluate": {"auc": a}} for a in aucs]}

    c = compare({"unified": runs(unified), "per_feature": runs(per_feature)})
    delta = np.subtract(unified, per_feature)
    assert c["auc_delta_mean"] == pytest.approx(delta.mean())
    assert c["auc_delta_std"] == pytest.approx(delta.std(ddof=1))
    assert c["seed_spread"] == pytest.approx(np.std(per_feature, ddof=1))  # the larger std
    assert c["unified_wins"] == 3 and c["beyond_spread"] is True
    assert compare({"unified": runs([0.7]), "per_feature": runs([0.7])})["beyond_spread"] is False
    one = compare({"unified": runs([0.75]), "per_feature": runs([0.70])})
    assert one["beyond_spread"] is False  # one seed has no spread to be beyond
    line = comparison_line(one, "30KB")
    assert "1 seed" in line and "±" not in line and "beyond" not in line
    assert "beyond the spread" in comparison_line(c, "30KB")


def test_rank_pairs_gains_by_dataset_and_seed(quality: ModuleType) -> None:
    def run(dataset: str, candidate: str, seed: int, auc: float) -> dict[str, object]:
        return {"dataset": dataset, "candidate": candidate, "seed": seed, "auc": auc}

    runs = [
        run("criteo", "defaults", 0, 0.70),
        run("criteo", "defaults", 1, 0.72),
        run("frappe", "defaults", 0, 0.93),
        run("criteo", "lr x2", 0, 0.71),
        run("criteo", "lr x2", 1, 0.74),
        run("frappe", "lr x2", 0, 0.94),
        run("criteo", "autoint+", 0, 0.69),
        run("criteo", "autoint+", 1, 0.73),
        run("criteo", "no baseline seed", 7, 0.99),
    ]
    ranking = quality.rank(runs)
    assert [r["candidate"] for r in ranking] == ["lr x2", "autoint+"]
    gains = np.array([0.01, 0.02, 0.01])
    best = ranking[0]
    assert best["mean_auc_gain"] == pytest.approx(gains.mean(), abs=1e-4)
    assert best["standard_error"] == pytest.approx(gains.std(ddof=1) / np.sqrt(3), abs=1e-4)
    assert best["adopted"] and best["gains"] == {"criteo": 0.015, "frappe": 0.01}
    assert not ranking[1]["adopted"]  # gains -0.01 and +0.01: mean 0
