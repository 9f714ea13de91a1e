"""`TrainJob`: what `ue train` was asked to do, validated before anything runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from unified_embedding.budget.layouts import LAYOUTS
from unified_embedding.budget.probes import parse_probes
from unified_embedding.models.autoint import PRECISIONS, AutoIntConfig
from unified_embedding.training.experiment import TrainConfig
from unified_embedding.training.strategies import STRATEGIES

# Learning rates x this after an evaluation without a validation-AUC gain (`ue train
# --plateau-decay`; 1 turns it off). Chosen by benchmarks/quality.py's protocol on the validation
# carve-outs (README, "Quality vs peers"): +0.0016 ± 0.0008 AUC over no decay, 9 dataset-seed
# pairs, never below -0.0002; FuxiCTR, a peer, reduces its learning rate on a plateau too.
PLATEAU_DECAY = 0.2


@dataclass(frozen=True)
class TrainJob:
    data_dir: str
    model_dir: str
    layout: str = "unified"
    budget: str | None = None  # default: stats.json's data_budget_bytes, else spec.json's table
    probes: str | None = None  # "auto" or a count per hashed field; default: the records'
    steps: int = 10_000
    eval_every: int | None = None  # default: one pass over the train split, at most 1,000
    checkpoint_every: int = 200
    patience: int = 3
    plateau_decay: float = PLATEAU_DECAY  # learning rates x this after an eval without gain
    eval_share: float = 0.0  # of the train split's rows, held out and evaluated (eval_rows.py)
    bias_from_label_rate: bool = True  # False: the output bias starts at 0 (a baseline)
    refit_output_bias: bool = True  # after training, on the train rows (recalibrate.py)
    batch_size: int = 512  # global, split across replicas; beat 1024 on the Frappe sample
    strategy: str = "default"
    cpu_devices: int = 1  # >1 splits the CPU into logical devices (multi-device code on CPU)
    precision: str = "auto"  # or one of model.PRECISIONS; see `resolve_precision`
    overwrite: bool = False  # a finished run in model_dir: start afresh (else refused)
    model: AutoIntConfig = dataclasses.field(default_factory=AutoIntConfig)
    optimizer: TrainConfig = dataclasses.field(default_factory=TrainConfig)

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
        parse_probes(self.probes)  # raises naming the value
        if not 0.0 < self.plateau_decay <= 1.0:
            raise ValueError(
                f"`--plateau-decay` should be in (0, 1]. Received: `{self.plateau_decay}`"
            )
        if not 0.0 <= self.eval_share < 1.0:
            raise ValueError(f"`--eval-share` should be in [0, 1). Received: `{self.eval_share}`")
        for name in ("steps", "eval_every", "checkpoint_every", "batch_size", "cpu_devices"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"`{name}` should be >= 1. Received: `{getattr(self, name)}`")
