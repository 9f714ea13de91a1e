"""The gate before serving: a candidate model against the serving one, on the same labelled
rows, and the verdict `ue push` acts on and writes as the candidate's blessing.json.

    verdict = judge(labels, candidate_scores, baseline_scores, GateConfig())
    verdict.blessed, verdict.failed(), verdict.to_dict()

The checks (each threshold a flag of `ue push`):

    auc_gain           AUC(candidate) - AUC(serving) >= --min-auc-gain (0: not worse). With
                       `--auc-test lower_bound` the lower end of DeLong's `--confidence`
                       interval of that difference must reach it instead: only a gain that
                       is significant passes.
    logloss_increase   log loss(candidate) - log loss(serving) <= --max-logloss-increase (0)
    calibration_error  |calibration(candidate) - 1| <= --max-calibration-error (0.1), the
                       calibration being mean predicted / observed CTR

Without a serving model (the first push into an empty base) only the candidate's own check,
calibration, applies. The metrics are `metrics.exact`'s (`summary_metrics`), the AUC
comparison `metrics.delong`'s. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from unified_embedding.contract.artifacts import BLESSING_FILE, STAGING_PREFIX
from unified_embedding.contract.fields import FieldSpec
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.metrics.delong import MIN_ROWS_PER_CLASS, AucComparison, compare_aucs
from unified_embedding.metrics.exact import summary_metrics
from unified_embedding.runtime.flags import option

AUC_TESTS = ("estimate", "lower_bound")


@dataclass(frozen=True)
class GateConfig:
    """The thresholds a candidate must meet to replace the serving model (module docstring)."""

    min_auc_gain: float = option(
        0.0,
        "the candidate's AUC minus the serving model's, on the same rows, must be at least "
        "this (negative: tolerate a loss)",
    )
    max_logloss_increase: float = option(
        0.0, "the candidate's log loss minus the serving model's must be at most this"
    )
    max_calibration_error: float = option(
        0.1, "|mean predicted / observed CTR - 1| of the candidate must be at most this"
    )
    auc_test: str = option(
        "estimate",
        "what must reach --min-auc-gain: `estimate` (the AUC difference) or `lower_bound` (the "
        "lower end of its confidence interval: only a significant gain passes)",
        choices=AUC_TESTS,
    )
    confidence: float = option(0.95, "the confidence of the AUC difference's interval (DeLong)")

    def __post_init__(self) -> None:
        for name in ("min_auc_gain", "max_logloss_increase", "max_calibration_error"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"`--{_flag(name)}` should be finite. Received: `{value}`")
        if self.max_calibration_error < 0:
            raise ValueError(
                "`--max-calibration-error` should be >= 0. "
                f"Received: `{self.max_calibration_error}`"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"`--confidence` should be in (0, 1). Received: `{self.confidence}`")
        if self.auc_test not in AUC_TESTS:
            raise ValueError(
                f"`--auc-test` should be one of {AUC_TESTS}. Received: `{self.auc_test}`"
            )


def _flag(name: str) -> str:
    return name.replace("_", "-")


@dataclass(frozen=True)
class Check:
    """One threshold: `value` against `threshold`, `at_least` or at most."""

    name: str
    value: float
    threshold: float
    flag: str  # the threshold's flag
    at_least: bool

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.at_least else self.value <= self.threshold

    def describe(self) -> str:
        relation = (">=" if self.passed else "<") if self.at_least else "<=" if self.passed else ">"
        return f"{self.name} {self.value:+.4f} {relation} --{self.flag} {self.threshold:g}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "rule": ">=" if self.at_least else "<=",
            "threshold": self.threshold,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class Verdict:
    """The checks and the metrics they read; `blessed` when every check passes."""

    checks: tuple[Check, ...]
    candidate: dict[str, Any]  # summary_metrics of the candidate
    baseline: dict[str, Any] | None  # of the serving model; None: nothing to compare with
    comparison: AucComparison | None
    config: GateConfig

    @property
    def blessed(self) -> bool:
        return all(check.passed for check in self.checks)

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "blessed": self.blessed,
            "reasons": [check.describe() for check in self.failed()],
            "checks": [check.to_dict() for check in self.checks],
            "thresholds": dataclasses.asdict(self.config),
            "candidate_metrics": self.candidate,
            "baseline_metrics": self.baseline,
            "auc_difference": None if self.comparison is None else self.comparison.to_dict(),
        }


def _require_both_classes(labels: np.ndarray) -> None:
    positives = int(labels.sum())
    negatives = labels.size - positives
    if min(positives, negatives) < MIN_ROWS_PER_CLASS:
        raise ValueError(
            f"`--eval-input` should hold at least {MIN_ROWS_PER_CLASS} positive and "
            f"{MIN_ROWS_PER_CLASS} negative rows to compare AUCs. Received: {positives} "
            f"positives and {negatives} negatives"
        )


def judge(
    labels: npt.ArrayLike,
    candidate_scores: npt.ArrayLike,
    baseline_scores: npt.ArrayLike | None,
    config: GateConfig,
) -> Verdict:
    """The verdict on a candidate whose P(click) of labelled rows is `candidate_scores`, the
    serving model's `baseline_scores` of the same rows (None: there is no serving model)."""
    y = np.asarray(labels, dtype=np.float64)
    _require_both_classes(y)
    candidate = summary_metrics(y, candidate_scores)
    checks = [
        Check(
            "calibration_error",
            abs(candidate["calibration"] - 1.0),
            config.max_calibration_error,
            "max-calibration-error",
            at_least=False,
        )
    ]
    if baseline_scores is None:
        return Verdict(tuple(checks), candidate, None, None, config)
    baseline = summary_metrics(y, baseline_scores)
    comparison = compare_aucs(y, candidate_scores, baseline_scores, config.confidence)
    gain = comparison.lower if config.auc_test == "lower_bound" else comparison.difference
    checks[:0] = [
        Check(
            "auc_gain" if config.auc_test == "estimate" else "auc_gain_lower_bound",
            gain,
            config.min_auc_gain,
            "min-auc-gain",
            at_least=True,
        ),
        Check(
            "logloss_increase",
            candidate["logloss"] - baseline["logloss"],
            config.max_logloss_increase,
            "max-logloss-increase",
            at_least=False,
        ),
    ]
    return Verdict(tuple(checks), candidate, baseline, comparison, config)


def _raw_field(field: FieldSpec) -> str:
    """What a client sends for the field: its kind, and a multi-valued field's separator."""
    return field.kind if field.separator is None else f"{field.kind} ({field.separator!r})"


def raw_field_differences(candidate: FeatureSpec, baseline: FeatureSpec) -> list[str]:
    """How the raw fields two models take differ (names, kinds, separators); [] when alike."""
    ours = {f.name: _raw_field(f) for f in candidate.fields}
    theirs = {f.name: _raw_field(f) for f in baseline.fields}
    differences = []
    if only := sorted(set(ours) - set(theirs)):
        differences.append(f"only the candidate takes {only}")
    if only := sorted(set(theirs) - set(ours)):
        differences.append(f"only the serving model takes {only}")
    for name in sorted(set(ours) & set(theirs)):
        if ours[name] != theirs[name]:
            differences.append(f"`{name}` is {ours[name]} in the candidate, {theirs[name]} served")
    return differences


def write_blessing(folder: Path, record: dict[str, Any]) -> Path:
    """Writes `record` as `folder`/blessing.json, replaced whole (a reader never sees half)."""
    from unified_embedding.evaluation.json_report import dumps

    target = folder / BLESSING_FILE
    partial = folder / f"{STAGING_PREFIX}{BLESSING_FILE}.partial"
    partial.write_text(dumps(record) + "\n", encoding="utf-8")
    os.replace(partial, target)
    return target
