"""Keras callbacks of `ue train`'s fit loop (besides Keras's own). What they print goes to
stderr: stdout carries only `ue train`'s JSON result."""

from __future__ import annotations

import sys
import time
from typing import Any

import tf_keras as keras


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
    period) whose `monitor` is not above its best so far, as Keras's `ReduceLROnPlateau` with
    patience 0, but through a `CompositeOptimizer` too (its `optimizers`), whose learning
    rates are variables that checkpoints keep."""

    def __init__(self, factor: float, monitor: str = "val_auc") -> None:
        super().__init__()
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"`plateau_decay` should be in (0, 1]. Received: `{factor}`")
        self.factor = factor
        self.monitor = monitor
        self.best = -float("inf")

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.best = -float("inf")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or self.factor == 1.0:
            return
        if value > self.best:
            self.best = value
            return
        optimizer = self.model.optimizer
        for each in getattr(optimizer, "optimizers", [optimizer]):
            each.learning_rate.assign(each.learning_rate * self.factor)
        print(
            f"{self.monitor} {value:.4f} not above {self.best:.4f}: learning rates x{self.factor}",
            file=sys.stderr,
            flush=True,
        )


class Progress(keras.callbacks.Callback):
    """One line on stderr per evaluation, counted in steps and evaluations rather than Keras's
    epochs (an evaluation period is an epoch to `fit`, and early stopping ends most runs long
    before the last one):

        step 400/10000 (eval 2): loss 0.4712 | eval auc 0.7101 logloss 0.4655 ... | 9,870 examples/s

    Epoch-level hooks only, as `ExamplesPerSecond`; place it after that callback."""

    def __init__(self, total_steps: int, patience: int) -> None:
        super().__init__()
        self._total = total_steps
        self._patience = patience
        self._step = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        step = self._step = min((epoch + 1) * int(self.params.get("steps") or 0), self._total)
        parts = [f"step {step}/{self._total} (eval {epoch + 1})"]
        if "loss" in logs:
            parts[0] += f": loss {logs['loss']:.4f}"
        # the evaluation's metrics, not its losses (`val_loss`: `val_logloss` + regularization)
        evaluated = [
            f"{k[4:]} {v:.4f}"
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
                f"stopped early at step {self._step}: no AUC gain in the last {self._patience} "
                "evaluations; keeping the best weights",
                file=sys.stderr,
                flush=True,
            )
