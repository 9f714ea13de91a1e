"""Keras callbacks of `ue train`'s fit loop (besides Keras's own)."""

from __future__ import annotations

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
            print(f"resuming from step {self.resumed_from_step}", flush=True)


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
            flush=True,
        )
