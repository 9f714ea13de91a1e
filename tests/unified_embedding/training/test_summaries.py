"""A `fit` interrupted by an error leaves the process's TensorBoard summaries recording."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from unified_embedding.training.callbacks import summaries_restored_on_error


class _Killed(Exception):
    pass


class _KillAfterFirstBatch(keras.callbacks.Callback):
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        raise _Killed


def _scalars(folder: Path) -> list[str]:
    return [
        value.tag
        for path in folder.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    ]


def _interrupted_fit(log_dir: Path) -> None:
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    board = keras.callbacks.TensorBoard(str(log_dir), update_freq=5)
    callbacks = [board, _KillAfterFirstBatch()]
    model.fit(np.zeros((16, 2)), np.zeros((16, 1)), batch_size=4, verbose=0, callbacks=callbacks)


def test_summaries_written_after_an_interrupted_fit_are_recorded(tmp_path: Path) -> None:
    with pytest.raises(_Killed), summaries_restored_on_error():
        _interrupted_fit(tmp_path / "run")
    writer = tf.summary.create_file_writer(str(tmp_path / "after"))
    with writer.as_default():
        tf.summary.scalar("written_after", 1.0, step=7)
    writer.close()
    assert _scalars(tmp_path / "after") == ["written_after"]
