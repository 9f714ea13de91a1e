"""`ue evaluate`: an exported model's metrics on labelled raw rows, one JSON line (warnings on
stderr). The model and the rows are looked for before TensorFlow starts.

    ue evaluate --model export/ --input holdout.tsv [--schema criteo]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unified_embedding.exported.versions import locate
from unified_embedding.runtime.flags import add_flags, command_parser, from_flags, option


@dataclass(frozen=True)
class EvaluateCommand:
    model: str = option(help="an export base (its newest version) or a version folder")
    input: Path = option(help="labelled raw rows (CSV/TSV, .gz ok)")
    schema: str | None = option(
        None,
        "criteo | avazu | frappe | FILE.json; None: the format of the model's own data (its "
        "assets/spec.json)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "ue evaluate",
        "Score labelled raw rows with an exported model: AUC, log loss, calibration and ECE, "
        "the metrics `ue score` reports.",
    )
    add_flags(parser, EvaluateCommand)
    return parser


def main(argv: Sequence[str]) -> int:
    command = from_flags(EvaluateCommand, build_parser().parse_args(argv))
    locate(command.model)  # a path without a SavedModel: FileNotFoundError, before TensorFlow
    if not command.input.is_file():
        raise FileNotFoundError(f"`--input {command.input}` is not a file")
    from unified_embedding.runtime.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    from unified_embedding.evaluation.evaluate import evaluate, print_report

    print_report(evaluate(command.model, command.input, command.schema))
    return 0
