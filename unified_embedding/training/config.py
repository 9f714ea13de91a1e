"""The training settings `ue train` builds its flags from, without TensorFlow (a wrong flag is
refused before TensorFlow starts): the optimisers' `TrainConfig` and the names of the
distribution strategies (`training.strategies` builds them)."""

from __future__ import annotations

from dataclasses import dataclass

from unified_embedding.runtime.flags import option

# `--strategy`: one factory each in `training.strategies`.
STRATEGIES = ("default", "mirrored", "multi_worker", "parameter_server", "tpu")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. The tables learn with sparse Adagrad (only touched rows update);
    the dense layers with Adam.

    Defaults measured by benchmarks/quality.py's sweep on the validation carve-outs of the
    Criteo, Avazu and Frappe samples (benchmarks/RESULTS.md, "Quality vs peers"): table
    learning rate 1.0 (validation AUC +0.0017 ± 0.0015 over 0.5); Adam's 5e-3 kept (x2: -0.0047,
    x0.5 on Frappe: -0.0035); no table weight decay (1e-3: -0.0003).
    """

    batch_size: int = 512
    epochs: int = 1
    learning_rate: float = option(5e-3, "Adam's, for every weight but the embedding tables")
    table_learning_rate: float = option(
        1.0,
        "sparse Adagrad's, for the embedding tables (per-feature hashing's smaller tables "
        "learned better at 0.3 in benchmarks/daily.py)",
    )
    table_weight_decay: float = 0.0  # decoupled, per step: row -= lr * decay * row
    seed: int = option(0, "initializers and shuffling")

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"`{name}` should be >= 1. Received: `{name}={getattr(self, name)}`"
                )
        for name in ("learning_rate", "table_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"`{name}` should be > 0. Received: `{name}={getattr(self, name)}`"
                )
        if not self.table_weight_decay >= 0:
            raise ValueError(
                "`table_weight_decay` should be >= 0. "
                f"Received: `table_weight_decay={self.table_weight_decay}`"
            )
