"""TensorFlow's thread pools for processes that run many small model calls at once: `ue serve`'s
workers and `ue score`'s Beam workers."""

from __future__ import annotations


def set_op_threads(threads: int | None) -> bool:
    """TensorFlow's intra- and inter-op thread pools, before the runtime starts (False after);
    0 or None leaves TensorFlow's default (one per core).

    One thread each is the fastest for small batches on a few cores: a batch-1 call of a 39-field
    model took ~0.7-0.8 ms instead of 2-3.5 ms with the defaults on a loaded 2-core machine, and
    batch-64 throughput rose too. Concurrency then comes from several model calls at once.
    """
    if not threads:
        return True
    from unified_embedding.runtime.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # the runtime is already initialized (e.g. a server inside a test)
        return False
    return True
