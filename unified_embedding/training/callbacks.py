"""Keras callbacks of `ue train`'s fit loop (besides Keras's own). What they print goes to
stderr: stdout carries only `ue train`'s JSON result."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import tf_keras as keras

from unified_embedding.metrics.histogram import histogram_auc, refined_auc, refinement_window
from unified_embedding.metrics.streaming import HistogramAUC

# `--early-stop-on`: the logged value early stopping, the best weights and the plateau decay
# watch, and whether higher is better.
MONITORS = {"auc": ("val_auc", "max"), "logloss": ("val_logloss", "min")}


def monitor_of(early_stop_on: str) -> tuple[str, str]:
    """(logged value, "max" or "min") that `--early-stop-on` names."""
    if early_stop_on not in MONITORS:
        raise ValueError(
            f"`--early-stop-on` should be one of {tuple(MONITORS)}. Received: `{early_stop_on}`"
        )
    return MONITORS[early_stop_on]


def refine_auc(
    model: keras.Model, data: Any, steps: int | None, logs: dict[str, Any], prefix: str = ""
) -> None:
    """Writes `logs[prefix + "auc"]` and its bound `logs[prefix + "auc_bound"]` from the
    model's `HistogramAUC` metric (in float64, `histogram.histogram_auc`) after an evaluation
    of `data`, while the metric still holds it. When the bound exceeds AUC_MAX_BOUND (scores
    bunched within a few logit bins), evaluates `data` once more counting only the bins that
    hold the tied pairs, split finer, and writes the combined AUC and bound instead
    (`histogram.refined_auc`). Nothing is written when the evaluation held one class."""
    metric = next(m for m in model.metrics if isinstance(m, HistogramAUC) and m.name == "auc")
    coarse = metric.histograms()
    auc, bound = histogram_auc(*coarse)
    if auc is None:
        return
    key = f"{prefix}auc"
    logs[key], logs[f"{key}_bound"] = auc, bound
    window = refinement_window(*coarse)
    if window is None:
        return
    metric.set_window(window)
    try:
        model.evaluate(data, steps=steps, verbose=0)
        fine = metric.histograms()
    finally:
        metric.set_window(None)
    logs[key], logs[f"{key}_bound"] = refined_auc(coarse, window, fine)


class RefineAUC(keras.callbacks.Callback):
    """`refine_auc` after each evaluation of `fit` (place it before the callbacks that read
    `val_auc`): `val_auc_bound` logged, and one more pass over the eval rows when it exceeds
    `histogram.AUC_MAX_BOUND`."""

    def __init__(self, data: Any, steps: int | None) -> None:
        super().__init__()
        self._data = data
        self._steps = steps

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is not None:
            refine_auc(self.model, self._data, self._steps, logs, prefix="val_")


class ExamplesPerSecond(keras.callbacks.Callback):
    """Adds `examples_per_second` of each evaluation period's training steps to the logs (and
    TensorBoard). Epoch-level hooks only: ParameterServerStrategy refuses batch-level ones."""

    def __init__(self, batch_size: int) -> None:
        super().__init__()
        self._batch_size = batch_size
        self._started = self._trained = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._started = self._trained = time.perf_counter()

    def on_test_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._trained = time.perf_counter()  # validation starts: the period's steps are done

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        ended = self._trained if self._trained > self._started else time.perf_counter()
        if logs is not None and self.params.get("steps"):
            logs["examples_per_second"] = (
                self.params["steps"] * self._batch_size / (ended - self._started)
            )


class ResumeLogger(keras.callbacks.Callback):
    """Records the step training starts from (after `BackupAndRestore` restored its state)."""

    resumed_from_step = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.resumed_from_step = int(self.model.optimizer.iterations.numpy())
        if self.resumed_from_step:
            print(f"resuming from step {self.resumed_from_step}", file=sys.stderr, flush=True)


class DecayOnPlateau(keras.callbacks.Callback):
    """Multiplies every optimizer's learning rate by `factor` after an epoch (evaluation
    period) whose `monitor` is not better than its best so far (above, `mode="max"`; below,
    `"min"`), as Keras's `ReduceLROnPlateau` with patience 0, but through a
    `CompositeOptimizer` too (its `optimizers`), whose learning rates are variables that
    checkpoints keep."""

    def __init__(self, factor: float, monitor: str = "val_auc", mode: str = "max") -> None:
        super().__init__()
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"`plateau_decay` should be in (0, 1]. Received: `{factor}`")
        if mode not in ("max", "min"):
            raise ValueError(f"`mode` should be 'max' or 'min'. Received: `mode={mode!r}`")
        self.factor = factor
        self.monitor = monitor
        self.mode = mode
        self.best = -float("inf")

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.best = -float("inf")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or self.factor == 1.0:
            return
        signed = value if self.mode == "max" else -value  # higher is better
        if signed > self.best:
            self.best = signed
            return
        optimizer = self.model.optimizer
        for each in getattr(optimizer, "optimizers", [optimizer]):
            each.learning_rate.assign(each.learning_rate * self.factor)
        best = self.best if self.mode == "max" else -self.best
        print(
            f"{self.monitor} {value:.4f} not {'above' if self.mode == 'max' else 'below'} "
            f"{best:.4f}: learning rates x{self.factor}",
            file=sys.stderr,
            flush=True,
        )


class Progress(keras.callbacks.Callback):
    """One line on stderr per evaluation, counted in steps and evaluations rather than Keras's
    epochs (an evaluation period is an epoch to `fit`, and early stopping ends most runs long
    before the last one):

        step 400/10000 (eval 2): loss 0.4712 | eval auc 0.7101 logloss 0.4655 ... | 9,870 examples/s

    Epoch-level hooks only, as `ExamplesPerSecond`; place it after that callback."""

    def __init__(self, total_steps: int, patience: int, early_stop_on: str = "auc") -> None:
        super().__init__()
        self._total = total_steps
        self._patience = patience
        self._watched = {"auc": "AUC gain", "logloss": "log loss drop"}[early_stop_on]
        self._step = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        step = self._step = min((epoch + 1) * int(self.params.get("steps") or 0), self._total)
        parts = [f"step {step}/{self._total} (eval {epoch + 1})"]
        if "loss" in logs:
            parts[0] += f": loss {logs['loss']:.4f}"
        # the evaluation's metrics, not its losses (`val_loss`: `val_logloss` + regularization)
        evaluated = [
            f"{k[4:]} {v:.2g}" if k.endswith("_bound") else f"{k[4:]} {v:.4f}"
            for k, v in logs.items()
            if k.startswith("val_") and not k.endswith("_loss")
        ]
        if evaluated:
            parts.append("eval " + " ".join(evaluated))
        if "examples_per_second" in logs:
            parts.append(f"{logs['examples_per_second']:,.0f} examples/s")
        print(" | ".join(parts), file=sys.stderr, flush=True)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.model.stop_training:
            print(
                f"stopped early at step {self._step}: no {self._watched} in the last "
                f"{self._patience} evaluations; keeping the best weights",
                file=sys.stderr,
                flush=True,
            )


@contextlib.contextmanager
def summaries_restored_on_error() -> Iterator[None]:
    """Keras's TensorBoard callback points the thread's summary state (writer, step, whether
    to record) at its own writers until `on_train_end`, which a `fit` interrupted by an error
    never reaches: every later `tf.summary` call of the process would then go to the dead run
    or not be recorded (a notebook training again after an interrupted run). Restores it."""
    from tensorflow.python.ops import summary_ops_v2  # the state has no public accessor

    state = summary_ops_v2._summary_state
    saved = (state.writer, state.step, state.is_recording)
    try:
        yield
    except BaseException:
        state.writer, state.step, state.is_recording = saved
        raise
