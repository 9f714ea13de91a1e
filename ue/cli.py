"""The `ue` command line: `ue <command> [flags]` runs the `main(argv)` of the subsystem that owns
the command, imported only then; that command's parser owns its flags and its `--help`.

Bad input (a wrong value, a missing file) is one line `ue <command>: error: ...` and status 2; a
job that fails is `ue <command>: failed: <cause>` and status 1 (`runtime.command`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NamedTuple

from unified_embedding.runtime.command import run_command


class Command(NamedTuple):
    target: str  # "module:function", a `main(argv) -> int`
    summary: str  # its line in `ue --help`
    subcommands: tuple[str, ...] = ()  # `ue schema infer`: each has its own --help


COMMANDS = {
    "generate": Command(
        "unified_embedding.synthetic.cli:main",
        "write Criteo-format rows with planted interactions (TSV, .gz ok)",
    ),
    "schema": Command(
        "unified_embedding.rows.schema_cli:main",
        "`ue schema infer FILE`: propose a schema file from a CSV/TSV's header and rows",
        ("infer",),
    ),
    "preprocess": Command(
        "pipelines.preprocess:main",
        "Beam job: raw rows -> train/eval records, spec.json, stats.json",
    ),
    "train": Command(
        "unified_embedding.training.cli:main", "train AutoInt on the records of ue preprocess"
    ),
    "export": Command(
        "unified_embedding.training.export_cli:main", "a trained run as a new SavedModel version"
    ),
    "evaluate": Command(
        "unified_embedding.evaluation.cli:main",
        "an exported model's metrics on labelled raw rows",
    ),
    "push": Command(
        "unified_embedding.evaluation.push_cli:main",
        "the gate before serving: compare a candidate with the serving model, copy it in if better",
    ),
    "score": Command(
        "pipelines.score:main",
        "Beam job: P(click) per raw row from an exported model, score shards, stats.json",
    ),
    "serve": Command(
        "serving.cli:serve_main",
        "gRPC and REST server (TF Serving's APIs) over exported models, with hot reload",
    ),
    "predict": Command("serving.cli:predict_main", "score the rows of a file through ue serve"),
    "demo": Command(
        "ue.demo:main",
        "the whole path on generated data: preprocess, train, export, evaluate, serve",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """`ue`'s own parser: the commands, one line each. Each command parses its own flags."""
    parser = argparse.ArgumentParser(
        prog="ue",
        description="CTR ranking with one shared embedding table: from raw rows to a served "
        "model. `ue <command> --help` shows a command's flags and their defaults.",
    )
    commands = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.summary, add_help=False)
    return parser


def load(command: str) -> Callable[[Sequence[str]], int]:
    """The `main` of `command`, imported now."""
    module, _, function = COMMANDS[command].target.partition(":")
    main: Callable[[Sequence[str]], int] = getattr(importlib.import_module(module), function)
    return main


def run(command: str, argv: Sequence[str]) -> int:
    """Runs `ue <command> argv`: bad input and failed jobs end as one line (`run_command`)."""
    return run_command(f"ue {command}", lambda: load(command)(list(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO lines: none
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return run(argv[0], argv[1:])
    build_parser().parse_args(argv)  # `ue`, `ue --help`, `ue nonsense`: usage, and exits
    return 2


if __name__ == "__main__":
    sys.exit(main())
