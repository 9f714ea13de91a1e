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
