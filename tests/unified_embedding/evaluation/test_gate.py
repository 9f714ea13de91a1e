"""The gate's verdict from scores (NumPy oracles, no model), the raw-field comparison, the
blessing file, and `ue push`'s refusals before TensorFlow starts."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from unified_embedding.contract.artifacts import BLESSING_FILE, SAVED_MODEL_FILE, SPEC_ASSET
from unified_embedding.contract.fields import FieldSpec
from unified_embedding.contract.schemas import criteo
from unified_embedding.evaluation.gate import (
    GateConfig,
    judge,
    raw_field_differences,
    write_blessing,
)
from unified_embedding.evaluation.push_cli import PushCommand, plan
from unified_embedding.metrics.exact import calibration, log_loss, roc_auc

ROOT = Path(__file__).resolve().parents[3]


def scored_rows(rows: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels at ~10% CTR, a good model (`strong`) and a weaker one (`weak`), both calibrated
    on average: P(click) = sigmoid(bias + signal)."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    truth = 1 / (1 + np.exp(-(-2.5 + 1.5 * signal)))
    labels = (rng.random(rows) < truth).astype(np.float32)
    noisy = 1 / (1 + np.exp(-(-2.1 + 0.6 * (signal + rng.normal(size=rows)))))
    return labels, truth, noisy


def test_a_better_candidate_passes_with_the_metrics_of_metrics_exact() -> None:
    labels, strong, weak = scored_rows()
    verdict = judge(labels, strong, weak, GateConfig(max_calibration_error=0.2))
    assert verdict.blessed and verdict.failed() == []
    record = verdict.to_dict()
    assert [c["name"] for c in record["checks"]] == [
        "auc_gain",
        "logloss_increase",
        "calibration_error",
    ]
    gain, increase, error = (c["value"] for c in record["checks"])
    assert gain == pytest.approx(roc_auc(labels, strong) - roc_auc(labels, weak), abs=1e-12)
    assert increase == pytest.approx(log_loss(labels, strong) - log_loss(labels, weak))
    assert error == pytest.approx(abs(calibration(labels, strong) - 1))
    assert record["candidate_metrics"]["auc"] == pytest.approx(roc_auc(labels, strong))
    assert record["auc_difference"]["lower"] > 0  # a clear gain on 2000 rows
    assert record["thresholds"]["min_auc_gain"] == 0.0
    json.dumps(record, allow_nan=False)


def test_a_worse_candidate_fails_and_says_why() -> None:
    labels, strong, weak = scored_rows()
    verdict = judge(labels, weak, strong, GateConfig(max_calibration_error=0.2))
    assert not verdict.blessed
    assert [c.name for c in verdict.failed()] == ["auc_gain", "logloss_increase"]
    reasons = verdict.to_dict()["reasons"]
    assert reasons[0].startswith("auc_gain -0.") and "< --min-auc-gain 0" in reasons[0]
    assert "> --max-logloss-increase 0" in reasons[1]


def test_thresholds_tolerate_a_loss_or_demand_a_significant_gain() -> None:
    labels, strong, weak = scored_rows()
    tolerant = GateConfig(min_auc_gain=-0.5, max_logloss_increase=1.0, max_calibration_error=1)
    assert judge(labels, weak, strong, tolerant).blessed
    # the same model, slightly perturbed: a gain of about zero passes `estimate` at -0.01, and
    # fails `lower_bound` at +0.001 (its interval reaches below zero)
    rng = np.random.default_rng(1)
    jittered = np.clip(strong * np.exp(0.05 * rng.normal(size=strong.size)), 0, 1)
    estimate = judge(labels, jittered, strong, GateConfig(min_auc_gain=-0.01))
    bound = judge(labels, jittered, strong, GateConfig(min_auc_gain=0.001, auc_test="lower_bound"))
    assert estimate.checks[0].passed and estimate.checks[0].name == "auc_gain"
    assert bound.checks[0].name == "auc_gain_lower_bound" and not bound.checks[0].passed
    assert bound.checks[0].value == bound.comparison.lower  # type: ignore[union-attr]


def test_without_a_serving_model_only_calibration_is_checked() -> None:
    labels, strong, _ = scored_rows()
    verdict = judge(labels, strong, None, GateConfig(max_calibration_error=0.2))
    assert verdict.blessed and [c.name for c in verdict.checks] == ["calibration_error"]
    assert verdict.to_dict()["baseline_metrics"] is None
    assert verdict.to_dict()["auc_difference"] is None
    assert not judge(labels, strong * 0.8, None, GateConfig()).blessed  # 20% too low


def test_too_few_rows_of_a_class_and_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match=r"at least 2 positive and 2 negative rows.*1 positives"):
        judge(np.array([1, 0, 0]), np.array([0.5, 0.1, 0.2]), None, GateConfig())
    with pytest.raises(ValueError, match="`--max-calibration-error` should be >= 0"):
        GateConfig(max_calibration_error=-0.1)
    with pytest.raises(ValueError, match=r"`--confidence` should be in \(0, 1\)"):
        GateConfig(confidence=95)
    with pytest.raises(ValueError, match="`--min-auc-gain` should be finite"):
        GateConfig(min_auc_gain=math.nan)


def test_raw_field_differences_name_each_difference() -> None:
    spec = criteo()
    assert raw_field_differences(spec, spec) == []
    fields = [f for f in spec.fields if f.name != "C26"]
    fields[0] = FieldSpec("I1", kind="categorical")  # numeric served, categorical candidate
    other = spec.replace(fields=tuple(fields))
    assert raw_field_differences(other, spec) == [
        "only the serving model takes ['C26']",
        "`I1` is categorical in the candidate, numeric served",
    ]
    assert raw_field_differences(spec, other)[0] == "only the candidate takes ['C26']"


def test_blessing_is_replaced_whole(tmp_path: Path) -> None:
    write_blessing(tmp_path, {"blessed": False, "auc": math.nan})
    path = write_blessing(tmp_path, {"blessed": True})
    assert path == tmp_path / BLESSING_FILE
    assert json.loads(path.read_text()) == {"blessed": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == [BLESSING_FILE]


def fake_version(folder: Path, spec=None) -> Path:  # type: ignore[no-untyped-def]
    """A folder that looks like a version to the checks made before TensorFlow starts."""
    (folder / "assets").mkdir(parents=True)
    (folder / SAVED_MODEL_FILE).write_bytes(b"")
    (spec or criteo()).save(folder / SPEC_ASSET)
    return folder


def test_plan_refuses_bad_input_before_any_model_is_loaded(tmp_path: Path) -> None:
    candidate = fake_version(tmp_path / "export" / "20")
    rows = tmp_path / "day.tsv"
    rows.write_text("")

    def command(
        candidate: Path = candidate, base: Path = tmp_path / "serving", rows: str = str(rows)
    ) -> PushCommand:
        return PushCommand(str(candidate), base, rows)

    found = plan(command())
    assert found.baseline is None and found.files == (rows,)
    assert plan(command(candidate=tmp_path / "export")).candidate.version == 20
    with pytest.raises(FileNotFoundError, match="no SavedModel at `--candidate"):
        plan(command(candidate=tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match=r"`--eval-input .*\*.csv` matches no file"):
        plan(command(rows=str(tmp_path / "*.csv")))
    with pytest.raises(ValueError, match=r"should be an export base.*a version folder"):
        plan(command(base=candidate))
    with pytest.raises(ValueError, match="is already a version of"):
        plan(command(base=tmp_path / "export"))
    fields = tuple(f for f in criteo().fields if f.name != "C26")
    fake_version(tmp_path / "serving" / "10", criteo().replace(fields=fields))
    with pytest.raises(ValueError, match=r"same raw fields.*only the candidate takes \['C26'\]"):
        plan(command())


def test_ue_push_refuses_bad_input_in_one_line_without_tensorflow(tmp_path: Path) -> None:
    code = (
        "import sys; from ue.cli import main; status = main(sys.argv[1:]); "
        "print(status, 'tensorflow' in sys.modules)"
    )
    argv = ["push", "--candidate", str(tmp_path), "--serving-base", str(tmp_path / "s")]
    out = subprocess.run(
        [sys.executable, "-c", code, *argv, "--eval-input", "x.tsv", "--min-auc-gain", "nan"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.stdout.split() == ["2", "False"]
    assert out.stderr == "ue push: error: `--min-auc-gain` should be finite. Received: `nan`\n"
