"""`TrainJob`: what `ue train` was asked to do, validated before anything runs.

Each field with help is one `ue train` flag (`runtime.flags`), so `TrainJob()`'s defaults are
the command's: `ue train --help` shows them, and `TrainJob(data_dir, model_dir)` trains what
`ue train --data ... --model-dir ...` trains. No TensorFlow here: a wrong flag is refused at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unified_embedding.budget.layouts import LAYOUTS
from unified_embedding.budget.plan import parse_budget
from unified_embedding.budget.probes import parse_probes
from unified_embedding.models.config import DEFAULT_TRAIN_MODEL, PRECISIONS, AutoIntConfig
from unified_embedding.runtime.flags import option
from unified_embedding.training.config import STRATEGIES, TrainConfig

# Learning rates x this after an evaluation without a validation-AUC gain (`ue train
# --plateau-decay`; 1 turns it off). Chosen by benchmarks/quality.py's protocol on the validation
# carve-outs (benchmarks/RESULTS.md, "Quality vs peers"): +0.0016 ± 0.0008 AUC over no decay,
# 9 dataset-seed pairs, never below -0.0002; FuxiCTR, a peer, reduces its learning rate on a
# plateau too.
PLATEAU_DECAY = 0.2
EARLY_STOP_ON = ("auc", "logloss")  # `training.callbacks.MONITORS` maps them to logged values


@dataclass(frozen=True)
class TrainJob:
    data_dir: str = option(help="the output directory of ue preprocess", flag="--data")
    model_dir: str = option(help="checkpoints, logs, weights (resumes)")
    layout: str = option(
        "unified",
        "embedding layout; collisionless: a row per value seen in the train split (ignores "
        "--budget)",
        flag="--embedding",
        choices=LAYOUTS,
    )
    budget: str | None = option(
        None,
        "embedding parameter budget with units (200KB, 4MB, 1MiB); None: the table of the "
        "records' spec.json (ue preprocess's --budget, or sized from the data)",
    )
    probes: str | None = option(
        None,
        "lookups per hashed field, at most the records' (`ue preprocess --probes`); auto: 1 up "
        "to 100 distinct values, +1 per factor of 10 beyond, at most 4 (multi-size); None: the "
        "records'",
    )
    warm_start_from: str | None = option(
        None,
        "begin from a finished run (its --model-dir: weights and optimizer slots) or an export "
        "base or version (weights); its table, probes and model continue on --data's records",
    )
    steps: int = option(10_000, "training steps (batches)")
    eval_every: int | None = option(
        None, "steps between evaluations; None: one pass over the train split, at most 1000"
    )
    checkpoint_every: int = option(200, "steps between backups (resume)")
    patience: int = option(
        3, "evaluations without a gain (of --early-stop-on) before training stops"
    )
    early_stop_on: str = option(
        "auc",
        "what early stopping, the kept weights and --plateau-decay watch: the validation AUC "
        "(highest) or log loss (lowest)",
        choices=EARLY_STOP_ON,
    )
    plateau_decay: float = option(
        PLATEAU_DECAY,
        "learning rates x this after an evaluation without a gain (of --early-stop-on; 1: off)",
    )
    eval_share: float | None = option(
        None,
        "share of the train split's rows held out of training and evaluated with the eval "
        "split (chosen by a fingerprint of the row: the same rows on every run); None (auto): "
        "enough to evaluate on about 200 positives, at most 0.2, 0 when the eval split has them",
    )
    bias_from_label_rate: bool = True  # False: the output bias starts at 0 (a baseline)
    refit_output_bias: bool = True  # after training, on the train rows (recalibrate.py)
    # Global, split across replicas; beat 1024 on the Frappe sample.
    batch_size: int = option(512, "rows per training step")
    strategy: str = option(
        "default",
        "mirrored: data-parallel over every GPU (or the logical CPU devices); multi_worker: "
        "across the hosts in TF_CONFIG; parameter_server: the table sharded across TF_CONFIG's "
        "ps tasks (run the same command on every task); tpu: TPUStrategy on TPU_NAME",
        choices=STRATEGIES,
    )
    cpu_devices: int = option(
        1, "split the CPU into N logical devices (to exercise multi-device code on CPU)"
    )
    precision: str = option(
        "auto",
        "mixed_bfloat16: bfloat16 matrix work, float32 variables and loss; auto picks it where "
        "the hardware has native bfloat16 (AVX-512 BF16/AMX CPUs, TPUs, Ampere+ GPUs)",
        choices=("auto", *PRECISIONS),
    )
    overwrite: bool = option(
        False,
        "start a finished run in --model-dir afresh, removing only what a run writes (without "
        "it a finished run is refused; an unfinished one resumes)",
    )
    model: AutoIntConfig = DEFAULT_TRAIN_MODEL
    optimizer: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"`--embedding` should be one of {LAYOUTS}. Received: `{self.layout}`")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(
                f"`--precision` should be one of {('auto', *PRECISIONS)}. "
                f"Received: `{self.precision}`"
            )
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"`--strategy` should be one of {STRATEGIES}. Received: `{self.strategy}`"
            )
        if self.warm_start_from is not None:
            _check_warm_start(self)
        if self.budget is not None:
            parse_budget(self.budget)  # raises naming the value
        parse_probes(self.probes)  # raises naming the value
        if not 0.0 < self.plateau_decay <= 1.0:
            raise ValueError(
                f"`--plateau-decay` should be in (0, 1]. Received: `{self.plateau_decay}`"
            )
        if self.early_stop_on not in EARLY_STOP_ON:
            raise ValueError(
                f"`--early-stop-on` should be one of {EARLY_STOP_ON}. "
                f"Received: `{self.early_stop_on}`"
            )
        if self.eval_share is not None and not 0.0 <= self.eval_share < 1.0:
            raise ValueError(f"`--eval-share` should be in [0, 1). Received: `{self.eval_share}`")
        for name in ("steps", "eval_every", "checkpoint_every", "batch_size", "cpu_devices"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"`{name}` should be >= 1. Received: `{getattr(self, name)}`")


def _check_warm_start(job: TrainJob) -> None:
    """A warm start continues its source's table and probes (`training.warm_start`), and
    writes a run of its own."""
    for flag, value in (("--budget", job.budget), ("--probes", job.probes)):
        if value is not None:
            raise ValueError(
                f"`{flag}` cannot be combined with `--warm-start-from`: the source model's "
                f"table and probes continue. Received: `{flag} {value}`"
            )
    if Path(str(job.warm_start_from)).resolve() == Path(job.model_dir).resolve():
        raise ValueError(
            f"`--warm-start-from` should be another run than `--model-dir`. Received: "
            f"`--warm-start-from {job.warm_start_from}`"
        )
