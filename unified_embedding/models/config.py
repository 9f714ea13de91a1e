"""AutoInt's hyper-parameters, without TensorFlow: `ue train` builds its flags from them before
TensorFlow starts, so a wrong flag is refused at once.

    AutoIntConfig()          the paper's AutoInt (3 interacting layers, 2 heads of 32)
    DEFAULT_TRAIN_MODEL      what `ue train` (and `TrainJob()`) trains: AutoInt+ 256-256
"""

from __future__ import annotations

import dataclasses
import math

from unified_embedding.runtime.flags import option

PRECISIONS = ("float32", "mixed_bfloat16")
MIN_LABEL_RATE = 1e-6  # `output_bias_for` clips rates to [MIN, 1 - MIN]: a finite logit


def output_bias_for(label_rate: float) -> float:
    """The logit whose sigmoid is `label_rate`: the output bias that predicts the base rate."""
    if not 0.0 <= label_rate <= 1.0:
        raise ValueError(f"`label_rate` should be in [0, 1]. Received: `label_rate={label_rate}`")
    rate = min(max(label_rate, MIN_LABEL_RATE), 1.0 - MIN_LABEL_RATE)
    return math.log(rate / (1.0 - rate))


@dataclasses.dataclass(frozen=True)
class AutoIntConfig:
    """Hyper-parameters of AutoInt (defaults: the paper's); non-empty `dnn_units` = AutoInt+.

    Attributes:
      num_layers, num_heads, head_dim, use_residual, use_scale: see `InteractingLayer`.
      dnn_units: hidden widths of AutoInt+'s parallel ReLU network; `()` for plain AutoInt.
      dropout: dropout rate after each hidden layer of that network.
      precision: `float32`, or `mixed_bfloat16` for bfloat16 matrix work in the interacting
        layers and the DNN (float32 variables, softmax, logits and loss; ~1.6-2x faster on
        CPUs with AVX-512 BF16 or AMX, on TPUs and on GPUs from Ampere on).
      output_bias: initial bias of the logit; `ue train` sets logit(training label rate) so the
        first predictions are the base rate (`output_bias_for`), not 0.5.
      nested_widths: Matryoshka training of the embedding table (Kusupati et al., NeurIPS
        2022): widths m, each dividing the table's width c and c among them, so that the first
        m columns of every row serve as a table of their own (`ue export --table-width m`).
        The loss is the mean of the model's loss read at each width, every batch; `()`: off.
    """

    num_layers: int = 3
    num_heads: int = 2
    head_dim: int = 32
    use_residual: bool = True
    use_scale: bool = False
    dnn_units: tuple[int, ...] = option(
        (),
        "widths of AutoInt+'s parallel ReLU network (with its dropout); `--dnn-units` with no "
        "value: plain AutoInt, without dropout",
    )
    dropout: float = 0.0
    precision: str = "float32"
    output_bias: float = 0.0
    nested_widths: tuple[int, ...] = option(
        (),
        "train the table so its first m columns also serve alone, for each width m listed "
        "(e.g. 2,4,8: divisors of the table's width, which is among them); the loss is the "
        "mean of the model's loss at every width; none: off",
    )

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"`precision` should be one of {PRECISIONS}. Received: `precision={self.precision}`"
            )
        for name in ("num_layers", "num_heads", "head_dim"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"`{name}` should be >= 1. Received: `{name}={value}`")
        # Accept a list from a command line or JSON, but store a tuple to stay hashable.
        object.__setattr__(self, "dnn_units", tuple(self.dnn_units))
        if any(units < 1 for units in self.dnn_units):
            raise ValueError(
                f"`dnn_units` should all be >= 1. Received: `dnn_units={self.dnn_units}`"
            )
        object.__setattr__(self, "nested_widths", tuple(sorted(set(self.nested_widths))))
        if any(width < 1 for width in self.nested_widths):
            raise ValueError(
                f"`nested_widths` should all be >= 1. Received: "
                f"`nested_widths={self.nested_widths}`"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` should be in [0, 1). Received: `dropout={self.dropout}`")
        if not math.isfinite(self.output_bias):
            raise ValueError(
                f"`output_bias` should be finite. Received: `output_bias={self.output_bias}`"
            )
        if self.dropout and not self.dnn_units:
            raise ValueError(
                "`dropout` only applies to the AutoInt+ DNN, so `dnn_units` should be set. "
                f"Received: `dropout={self.dropout}`, `dnn_units={self.dnn_units}`"
            )


# `ue train`'s model (and `ue demo`'s): AutoInt+ with a (256, 256) DNN and dropout 0.2. Chosen
# by benchmarks/quality.py's sweep on the validation carve-outs of the Criteo, Avazu and Frappe
# samples: validation AUC +0.0045 ± 0.0041 (standard error, 5 dataset-seed pairs) over plain
# AutoInt; Criteo -0.0032, Avazu +0.0125, Frappe +0.0039 (benchmarks/RESULTS.md, "Quality vs
# peers").
# `AutoIntConfig()` stays the paper's AutoInt; `TrainJob()` trains this one, as `ue train` does.
DEFAULT_TRAIN_MODEL = AutoIntConfig(dnn_units=(256, 256), dropout=0.2)
