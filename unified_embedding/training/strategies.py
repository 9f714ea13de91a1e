"""tf.distribute strategies for `ue train`: one device, mirrored, multi-worker, parameter servers
(the shared table sharded across them) and TPUs; which task is the chief; how workers split rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import tensorflow as tf

MIN_SHARD_BYTES = 256 << 10  # variables smaller than this stay on one parameter server
TABLE_ASPECT = 32  # a table has at least this many rows per column; dense kernels stay whole


def table_partitioner(shards: int) -> Callable[[tf.TensorShape, tf.DType], list[int]]:
    """Row-wise shards for embedding tables (tall: >= TABLE_ASPECT rows per column, at least
    MIN_SHARD_BYTES), one piece for everything else: the layers' code reads dense kernels as
    plain variables (AutoInt+'s 624 x 256 DNN kernel, sharded, failed as a ShardedVariable)."""
    sized = tf.distribute.experimental.partitioners.MinSizePartitioner(
        min_shard_bytes=MIN_SHARD_BYTES, max_shards=shards
    )

    def partition(shape: tf.TensorShape, dtype: tf.DType) -> list[int]:
        dims = shape.as_list()
        if len(dims) == 2 and dims[0] >= TABLE_ASPECT * dims[1]:
            return list(sized(shape, dtype))
        return [1] * len(dims)

    return partition


def make_strategy(name: str, cpu_devices: int) -> tf.distribute.Strategy:
    """`default` (one device), `mirrored` (every GPU; else the logical CPU devices),
    `multi_worker` (MultiWorkerMirroredStrategy over the hosts in TF_CONFIG),
    `parameter_server` (see `parameter_server_strategy`) or `tpu` (TPUStrategy on the TPU
    named by `TPU_NAME`, or the local one).

    Call before TensorFlow has run anything.
    """
    if cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices
        )
    return _FACTORIES[name]()


def mirrored_strategy() -> tf.distribute.MirroredStrategy:
    """Data-parallel over every GPU, else over the (logical) CPU devices."""
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def parameter_server_strategy(
    resolver: tf.distribute.cluster_resolver.ClusterResolver | None = None,
) -> tf.distribute.experimental.ParameterServerStrategy:
    """ParameterServerStrategy whose partitioner shards the shared table across the `ps` tasks.

    The cluster comes from TF_CONFIG (`chief`, `worker` and `ps` tasks). Run `ue train` with the
    same arguments on every task: on `worker` and `ps` tasks it serves (`serve_task`) until
    killed; the chief coordinates. Each table of at least MIN_SHARD_BYTES is split row-wise
    into up to one shard per parameter server (a `ShardedVariable`); every step gathers only
    the rows its batch touches, and the sparse Adagrad update goes to the shards that own them.
    """
    resolver = resolver or tf.distribute.cluster_resolver.TFConfigClusterResolver()
    shards = len(resolver.cluster_spec().as_dict().get("ps", []))
    if not shards:
        raise ValueError("`--strategy parameter_server` needs `ps` tasks in TF_CONFIG's cluster")
    return tf.distribute.experimental.ParameterServerStrategy(
        resolver, variable_partitioner=table_partitioner(shards)
    )


def serve_task() -> bool:
    """On a parameter-server cluster's `worker` or `ps` task: serve until killed (True).
    Elsewhere return False at once."""
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if resolver.task_type not in ("worker", "ps"):
        return False
    config = tf.compat.v1.ConfigProto()
    # Workers run one closure per scheduled step plus the coordinator's reads: with a single
    # inter-op thread a small host deadlocks.
    config.inter_op_parallelism_threads = max(4, (os.cpu_count() or 1) + 1)
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=resolver.task_type,
        task_index=resolver.task_id,
        protocol=resolver.rpc_layer or "grpc",
        config=config,
        start=True,
    )
    print(f"serving {resolver.task_type}:{resolver.task_id}", flush=True)
    server.join()
    return True


def tpu_strategy() -> tf.distribute.TPUStrategy:
    """TPUStrategy on the TPU in `TPU_NAME` (a Cloud TPU VM's local TPU when unset)."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief (or worker 0 of a chief-less cluster) writes the run's files."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    chief_type = "chief" if "chief" in resolver.cluster_spec().as_dict() else "worker"
    return bool(resolver.task_type == chief_type and resolver.task_id == 0)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Workers split rows, not files: correct with fewer record files than workers."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# One per name of `training.config.STRATEGIES` (what `--strategy` offers).
_FACTORIES: dict[str, Callable[[], tf.distribute.Strategy]] = {
    "default": tf.distribute.get_strategy,
    "mirrored": mirrored_strategy,
    "multi_worker": tf.distribute.MultiWorkerMirroredStrategy,
    "parameter_server": parameter_server_strategy,
    "tpu": tpu_strategy,
}
