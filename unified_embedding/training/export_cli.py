"""`ue export`: a trained run (`ue train --model-dir`) as a new SavedModel version under an
export base; prints the version's path.

    ue export --model-dir runs/m1 --export-base export/   # -> export/<version>
    ue export ... --table-width 4 --table-dtype int8      # the table's first 4 columns, int8
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from unified_embedding.contract.table import SERVED_DTYPES
from unified_embedding.runtime.flags import add_flags, command_parser, from_flags, option


@dataclass(frozen=True)
class ExportCommand:
    model_dir: Path = option(help="the --model-dir of ue train")
    export_base: Path = option(
        help="versions go to <export-base>/<version>/ (the unix time, or one more than the "
        "newest version there)"
    )
    table_width: int | None = option(
        None,
        "serve only the first N columns of every table row: the table's width or one of the "
        "run's --nested-widths; None: the whole row",
    )
    table_dtype: str = option(
        "float32",
        "how the served table is stored; int8: row-wise quantized (a float16 scale and offset "
        "per row), dequantized in the graph",
        choices=SERVED_DTYPES,
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
    from unified_embedding.exported.table_format import served_model
    from unified_embedding.exported.writer import export
    from unified_embedding.training.run import load_trained

    model, run = load_trained(command.model_dir)
    served, spec = served_model(model, run.feature_spec(), command.table_width, command.table_dtype)
    print(export(served, spec, command.export_base))
    return 0
