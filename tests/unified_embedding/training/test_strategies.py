"""The parameter-server partitioner shards embedding tables only."""

from __future__ import annotations

import tensorflow as tf

from unified_embedding.training.strategies import MIN_SHARD_BYTES, table_partitioner


def test_tables_are_sharded_row_wise():
    partition = table_partitioner(shards=2)
    assert partition(tf.TensorShape([65536, 8]), tf.float32) == [2, 1]
    assert partition(tf.TensorShape([8192, 16]), tf.float32) == [2, 1]


def test_dense_kernels_and_small_tables_stay_whole():
    partition = table_partitioner(shards=2)
    assert partition(tf.TensorShape([624, 256]), tf.float32) == [1, 1]  # AutoInt+'s DNN kernel
    assert partition(tf.TensorShape([256, 256]), tf.float32) == [1, 1]
    small_rows = MIN_SHARD_BYTES // (8 * 4) // 2
    assert partition(tf.TensorShape([small_rows, 8]), tf.float32) == [1, 1]
    assert partition(tf.TensorShape([624]), tf.float32) == [1]
    assert partition(tf.TensorShape([]), tf.float32) == []
