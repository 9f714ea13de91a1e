"""`ue export`: a trained run (`ue train --model-dir`) as a new SavedModel version under an
export base; prints the version's path.

    ue export --model-dir runs/m1 --export-base export/   # -> export/<version>
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unified_embedding.runtime.flags import add_flags, command_parser, from_flags, option


@dataclass(frozen=True)
class ExportCommand:
    model_dir: Path = option(help="the --model-dir of ue train")
    export_base: Path = option(
        help="versions go to <export-base>/<version>/ (the unix time, or one more than the "
        "newest version there)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "ue export",
        "Export a trained run's best weights as a new SavedModel version: its signatures "
        "(raw rows, packed rows, tf.Example, attention), its spec and warm-up requests.",
    )
    add_flags(parser, ExportCommand)
    return parser


def main(argv: Sequence[str]) -> int:
    command = from_flags(ExportCommand, build_parser().parse_args(argv))
    from unified_embedding.runtime.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    from unified_embedding.exported.writer import export
    from unified_embedding.training.run import load_trained

    model, run = load_trained(command.model_dir)
    print(export(model, run.feature_spec(), command.export_base))
    return 0
