"""`ue train`: its flags are `TrainJob`'s fields (and its model's `--dnn-units`, its optimiser's
`--seed`), parsed and checked before TensorFlow starts. Progress goes to stderr, one line per
evaluation; stdout carries only the JSON result.

    ue train --data prep/ --model-dir runs/m1 [--budget 1MB] [--steps 20000] > result.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from unified_embedding.contract.artifacts import SPEC_FILE
from unified_embedding.models.config import AutoIntConfig
from unified_embedding.runtime.flags import (
    add_flags,
    command_parser,
    field_default,
    from_flags,
    values_of,
    with_flags,
)
from unified_embedding.training.config import TrainConfig
from unified_embedding.training.job import TrainJob

PROG = "ue train"
DEFAULT_MODEL: AutoIntConfig = field_default(TrainJob, "model")
DEFAULT_OPTIMIZER: TrainConfig = field_default(TrainJob, "optimizer")


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, "Train AutoInt on the records of `ue preprocess`.")
    add_flags(parser, TrainJob)
    add_flags(parser, AutoIntConfig, defaults=values_of(DEFAULT_MODEL))
    add_flags(parser, TrainConfig, defaults=values_of(DEFAULT_OPTIMIZER))
    return parser


def job_from(args: argparse.Namespace) -> TrainJob:
    """The TrainJob the flags ask for. `--dnn-units` with no value: plain AutoInt, without the
    DNN's dropout."""
    dropout = DEFAULT_MODEL.dropout if args.dnn_units else 0.0
    model = with_flags(DEFAULT_MODEL, args, dropout=dropout)
    optimizer = with_flags(DEFAULT_OPTIMIZER, args)
    return from_flags(TrainJob, args, model=model, optimizer=optimizer)


def check_data(data_dir: str) -> None:
    """Refuses a `--data` without records before TensorFlow starts."""
    if not (Path(data_dir) / SPEC_FILE).is_file():
        raise FileNotFoundError(
            f"no {SPEC_FILE} in the data directory: give the --output of `ue preprocess`. "
            f"Received: `--data {data_dir}`"
        )


def check_warm_start(source: str | None) -> None:
    """Refuses a `--warm-start-from` that does not exist before TensorFlow starts (what it
    holds is checked by `training.warm_start`)."""
    if source is not None and not Path(source).exists():
        raise FileNotFoundError(
            f"no run directory or export there. Received: `--warm-start-from {source}`"
        )


def main(argv: Sequence[str]) -> int:
    job = job_from(build_parser().parse_args(argv))
    check_data(job.data_dir)
    check_warm_start(job.warm_start_from)
    from unified_embedding.runtime.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    from unified_embedding.training.loop import train

    print(json.dumps(train(job, progress=True)))
    return 0
