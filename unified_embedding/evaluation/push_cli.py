"""`ue push`: the gate before serving. Scores the same labelled rows with a candidate and with the
newest version of the serving base, writes the verdict as the candidate's blessing.json, and
copies a blessed candidate into the serving base as its next version, atomically.

    ue push --candidate export/17 --serving-base serving/ --eval-input 'day8/*.tsv'
    # stdout: the verdict, one JSON line; stderr: one line for people
    # exit 0: pushed, 3: not pushed, 2: bad input

Files, folders and the two models' raw fields are checked before TensorFlow starts.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unified_embedding.contract.artifacts import SAVED_MODEL_FILE, SPEC_ASSET
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.evaluation.gate import GateConfig, judge, raw_field_differences
from unified_embedding.exported.versions import ModelFolder, locate
from unified_embedding.rows.reader import concat_rows
from unified_embedding.runtime.flags import add_flags, command_parser, from_flags, option

PUSHED = 0
NOT_PUSHED = 3


@dataclass(frozen=True)
class PushCommand:
    candidate: str = option(
        help="the exported model to push: a version folder (an export base: its newest version)"
    )
    serving_base: Path = option(
        help="the export base `ue serve` serves: the candidate is compared with its newest "
        "version and, if it passes, copied in as the next version (absent or empty: the first "
        "push, nothing to compare with)"
    )
    eval_input: str = option(
        help="labelled raw rows both models score: a file or a glob (CSV/TSV, .gz ok), e.g. "
        "the day after the candidate's training data"
    )
    schema: str | None = option(
        None, "criteo | avazu | frappe | FILE.json; None: the format of the candidate's own data"
    )
    gate: GateConfig = field(default_factory=GateConfig)


@dataclass(frozen=True)
class PushPlan:
    """What a push reads, found before TensorFlow starts."""

    candidate: ModelFolder
    baseline: ModelFolder | None  # the serving base's newest version; None: an empty base
    files: tuple[Path, ...]


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "ue push",
        "Compare a candidate model with the serving base's newest version on the same labelled "
        "rows (AUC difference with DeLong's interval, log loss, calibration), write the verdict "
        "as the candidate's blessing.json, and copy a candidate that passes into the serving "
        "base as its next version. Exit status: 0 pushed, 3 not pushed, 2 bad input.",
    )
    add_flags(parser, PushCommand)
    add_flags(parser.add_argument_group("thresholds"), GateConfig)
    return parser


def _candidate(path: str) -> ModelFolder:
    try:
        return locate(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no SavedModel at `--candidate {path}` nor in version folders under it"
        ) from None


def _baseline(base: Path) -> ModelFolder | None:
    """The serving base's newest version; None for an absent or empty base."""
    if base.exists() and not base.is_dir():
        raise ValueError(f"`--serving-base {base}` should be a folder. Received: a file")
    if (base / SAVED_MODEL_FILE).is_file():
        raise ValueError(
            f"`--serving-base {base}` should be an export base (holding <version>/ folders). "
            "Received: a version folder"
        )
    try:
        return locate(base)
    except FileNotFoundError:
        return None


def _spec(folder: ModelFolder) -> FeatureSpec:
    return FeatureSpec.load(Path(folder.path) / SPEC_ASSET)


def plan(command: PushCommand) -> PushPlan:
    """The candidate, the serving version and the rows' files; raises ValueError or
    FileNotFoundError (status 2) for anything a push cannot start with."""
    candidate = _candidate(command.candidate)
    base = command.serving_base
    if Path(candidate.path).resolve().parent == base.resolve():
        raise ValueError(f"`--candidate {candidate.path}` is already a version of `{base}`")
    files = tuple(sorted(Path(p) for p in glob.glob(command.eval_input) if Path(p).is_file()))
    if not files:
        raise FileNotFoundError(f"`--eval-input {command.eval_input}` matches no file")
    baseline = _baseline(base)
    if baseline is not None:
        differences = raw_field_differences(_spec(candidate), _spec(baseline))
        if differences:
            raise ValueError(
                f"`--candidate {candidate.path}` and the serving version `{baseline.path}` "
                f"should take the same raw fields. Received: {'; '.join(differences)}"
            )
    return PushPlan(candidate, baseline, files)


def push(command: PushCommand, plan: PushPlan) -> dict[str, Any]:
    """Scores, judges, writes blessing.json, and copies a blessed candidate into the serving
    base; returns the verdict with `pushed` (the new version's path, or None)."""
    from unified_embedding.evaluation.gate import write_blessing
    from unified_embedding.evaluation.scoring import read_labelled
    from unified_embedding.exported.model import ExportedModel
    from unified_embedding.exported.publish import copy_as_next_version

    candidate = ExportedModel.load_folder(plan.candidate)
    rows = concat_rows([read_labelled(candidate, p, command.schema) for p in plan.files])
    baseline = None if plan.baseline is None else ExportedModel.load_folder(plan.baseline)
    verdict = judge(
        rows.labels,
        candidate.score_rows(rows),
        None if baseline is None else baseline.score_rows(rows),
        command.gate,
    )
    record = {
        "blessed": verdict.blessed,
        "candidate": {"path": candidate.path, "version": candidate.version},
        "serving_base": str(command.serving_base),
        "baseline": None
        if baseline is None
        else {"path": baseline.path, "version": baseline.version},
        "eval_input": command.eval_input,
        "files": [str(p) for p in plan.files],
        "rows": len(rows),
        **verdict.to_dict(),
        "judged_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    write_blessing(Path(candidate.path), record)
    pushed = (
        copy_as_next_version(Path(candidate.path), command.serving_base)
        if verdict.blessed
        else None
    )
    return {**record, "pushed": None if pushed is None else str(pushed)}


def summary_line(result: dict[str, Any]) -> str:
    """The verdict in one line for people."""
    metrics = result["candidate_metrics"]
    auc = "n/a" if metrics["auc"] is None else f"{metrics['auc']:.4f}"
    text = f"AUC {auc}, log loss {metrics['logloss']:.4f}, calibration {metrics['calibration']:.3f}"
    comparison = result["auc_difference"]
    if comparison is not None:
        base = result["baseline_metrics"]
        text = (
            f"AUC {comparison['auc']:.4f} vs {comparison['baseline_auc']:.4f} (gain "
            f"{comparison['difference']:+.4f}, {comparison['confidence']:.0%} interval "
            f"[{comparison['lower']:+.4f}, {comparison['upper']:+.4f}]), log loss "
            f"{metrics['logloss']:.4f} vs {base['logloss']:.4f}, calibration "
            f"{metrics['calibration']:.3f}"
        )
    else:
        text += " (no serving version to compare with)"
    if result["pushed"] is not None:
        return f"pushed `{result['candidate']['path']}` as `{result['pushed']}`: {text}"
    return f"not pushed: {'; '.join(result['reasons'])}. {text}"


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    command = from_flags(PushCommand, args, gate=from_flags(GateConfig, args))
    found = plan(command)  # bad input: ValueError or FileNotFoundError, before TensorFlow
    from unified_embedding.evaluation.json_report import dumps
    from unified_embedding.runtime.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    result = push(command, found)
    print(dumps(result, indent=None))
    print(f"ue push: {summary_line(result)}", file=sys.stderr)
    return PUSHED if result["pushed"] is not None else NOT_PUSHED
