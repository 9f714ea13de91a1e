"""How the predictor calls the model: the `packed` signature for scores, `attention` for
explanations, NumPy in and NumPy out.

    calls = SessionCalls.load("export/1700000000", field_names)   # what `ue serve` runs
    calls = FunctionCalls(tf.saved_model.load(...))                # the tf.function signatures
    calls.packed(categorical, numeric)      # float32 (rows,)
    calls.attention(columns)                # (rows, layers, heads, fields, fields), by field

`SessionCalls` runs the version the way TF Serving runs it: its `serve` graph in a
`tf.compat.v1.Session` (`SignatureSession`), one callable per signature made once from
`CallableOptions`, as TF Serving and Keras's graph backend make theirs: feeds, fetches and
Grappler's rewrite resolved at load, each call one C call with the arrays
(`TF_SessionRunCallable`). `Session.make_callable` with a feed list is not that: it runs
`Session.run` on every call, with its Python feed and fetch handling (~0.1 ms of a ~0.4 ms
batch-1 call). A `tf.function` signature instead goes, on every call, through Python argument
handling, eager tensors built from the arrays, and the function runtime, whose executor hands
each costly op to the inter-op pool and waits for it. With one inter-op thread (`ue serve
--op-threads 1`) the session runs every op in the caller's thread
(`inter_op_parallelism_threads=-1`): no hand-off. A batch-1 call of the 39-field demo model took
~0.30 ms instead of ~0.55 ms in process, scores equal to 1e-6
(tests/serving/test_model_call.py); batches of 100 rows ran alike.

The session restores its own copy of the variables from the version folder. Its callables are
thread-safe; it is closed when collected (a version unloaded after its last request).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.util import deprecation

Call = Callable[..., Any]


class ModelCalls(Protocol):
    def packed(self, categorical: np.ndarray, numeric: np.ndarray) -> np.ndarray: ...

    def attention(self, columns: Mapping[str, np.ndarray]) -> np.ndarray: ...


def session_config() -> tf.compat.v1.ConfigProto:
    """The process's TensorFlow thread settings (`runtime.threads.set_op_threads`); one
    inter-op thread becomes the caller's thread (-1: no pool, no hand-off)."""
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    return tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=tf.config.threading.get_intra_op_parallelism_threads(),
        inter_op_parallelism_threads=-1 if inter == 1 else inter,
        allow_soft_placement=True,
    )


class SignatureSession:
    """The signatures of one SavedModel folder in one session (`load`)."""

    def __init__(self, path: str, graph: tf.Graph, session: Any, signatures: Any) -> None:
        self.path = path
        self._graph = graph
        self._session = session
        self._signatures = signatures  # name -> SignatureDef

    @classmethod
    def load(cls, path: str | Path) -> SignatureSession:
        """Loads the `serve` graph of the SavedModel in `path` and restores its variables."""
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=session_config())
        # TF Serving's loader, deprecated for TF2 programs (not for this): no warning in the log
        with graph.as_default(), deprecation.silence():
            meta = tf.compat.v1.saved_model.load(session, [tf.saved_model.SERVING], str(path))
        return cls(str(path), graph, session, meta.signature_def)

    @property
    def signatures(self) -> tuple[str, ...]:
        return tuple(sorted(self._signatures))

    def outputs(self, signature: str) -> tuple[str, ...]:
        return tuple(sorted(self._signature(signature).outputs))

    def callable(self, signature: str, inputs: Sequence[str], output: str) -> Call:
        """`call(*arrays)` -> the NumPy value of `output`, the arrays in the order of `inputs`
        (every input of `signature`, each once)."""
        sig = self._signature(signature)
        if sorted(inputs) != sorted(sig.inputs) or output not in sig.outputs:
            raise ValueError(
                f"signature `{signature}` takes {sorted(sig.inputs)} and gives "
                f"{sorted(sig.outputs)}. Received: `inputs={list(inputs)}`, `output={output!r}`"
            )
        options = config_pb2.CallableOptions(
            feed=[sig.inputs[name].name for name in inputs], fetch=[sig.outputs[output].name]
        )
        # Keras's graph backend makes its callables the same way (the public `make_callable`
        # runs `Session.run` per call when given feeds)
        call = self._session._make_callable_from_options(options)
        dtypes = [tf.as_dtype(sig.inputs[name].dtype).as_numpy_dtype for name in inputs]

        def run(*arrays: Any) -> np.ndarray:
            # the C call takes arrays of the feeds' exact dtypes (object for strings)
            return call(*(np.asarray(a, d) for a, d in zip(arrays, dtypes, strict=True)))[0]

        return run

    def run(self, signature: str, arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Every output of `signature` for `arrays` (one per input, by name): the general form
        of `callable`, for tests and tools."""
        sig = self._signature(signature)
        tensor = self._graph.get_tensor_by_name
        names = self.outputs(signature)
        fetched = self._session.run(
            [tensor(sig.outputs[n].name) for n in names],
            {tensor(sig.inputs[k].name): v for k, v in arrays.items()},
        )
        return dict(zip(names, fetched, strict=True))

    def _signature(self, name: str) -> Any:
        if name not in self._signatures:
            raise KeyError(
                f"the SavedModel in {self.path} has no signature `{name}`; it has "
                f"{sorted(self._signatures)}"
            )
        return self._signatures[name]


class SessionCalls:
    """`packed` and `attention` as session callables (`load`)."""

    def __init__(self, session: SignatureSession, field_names: Sequence[str]) -> None:
        self.session = session
        self._fields = tuple(field_names)
        self._packed = session.callable("packed", ("categorical", "numeric"), "probability")
        self._attention = session.callable("attention", self._fields, "attention")

    @classmethod
    def load(cls, path: str | Path, field_names: Sequence[str]) -> SessionCalls:
        return cls(SignatureSession.load(path), field_names)

    def packed(self, categorical: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        return self._packed(categorical, numeric)

    def attention(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._attention(*(columns[name] for name in self._fields))


class FunctionCalls:
    """`packed` and `attention` through the `tf.function` signatures of `tf.saved_model.load`."""

    def __init__(self, loaded: Any) -> None:
        self._loaded = loaded  # keeps the variables alive
        self._packed = loaded.signatures["packed"]
        self._attention = loaded.signatures["attention"]

    def packed(self, categorical: np.ndarray, numeric: np.ndarray) -> np.ndarray:
        out = self._packed(
            categorical=tf.constant(categorical, tf.string),
            numeric=tf.constant(numeric, tf.float32),
        )
        return out["probability"].numpy()

    def attention(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        raw = {
            name: tf.constant(array, tf.float32 if array.dtype.kind == "f" else tf.string)
            for name, array in columns.items()
        }
        return self._attention(**raw)["attention"].numpy()


__all__ = ["FunctionCalls", "ModelCalls", "SessionCalls", "SignatureSession", "session_config"]
