"""The HyperLogLog sketch behind stats.json's `approx_distinct`: registers against a pure-Python
oracle, estimates within the stated error, and merges that are exact (register-wise max).

A fingerprint's 63 bits split into a register index and the rest (precision p = 14):

    bit  62 ........ 49 | 48 .................. 0
         index (p bits) | rest (63 - p bits): rank = leading zeros of rest + 1
"""

import numpy as np
import pytest

from pipelines.sketch import PRECISION, HyperLogLog

FINGERPRINTS = 2**63 - 1  # hashing.FINGERPRINT_BUCKETS: fingerprints are in [0, 2^63 - 1)
STANDARD_ERROR = 1.04 / np.sqrt(2**PRECISION)  # Flajolet et al. 2007: ~0.8% at p = 14


def distinct(count: int, seed: int) -> np.ndarray:
    """`count` distinct int64 fingerprints, uniformly spread as SipHash values are."""
    rng = np.random.default_rng(seed)
    values = np.unique(rng.integers(0, FINGERPRINTS, size=count + count // 100 + 10))
    return rng.permutation(values)[:count]


def oracle_registers(values: list[int], precision: int) -> np.ndarray:
    """The registers by Python ints: rank = position of the first 1 bit of the rest."""
    rest_bits = 63 - precision
    registers = [0] * (1 << precision)
    for v in values:
        index, rest = v >> rest_bits, v & ((1 << rest_bits) - 1)
        registers[index] = max(registers[index], rest_bits - rest.bit_length() + 1)
    return np.array(registers, np.uint8)


EDGES = [
    0,  # register 0, rest 0: the highest rank, 63 - p + 1
    1,  # rest 1: rank 63 - p
    (1 << 49) - 1,  # register 0, every rest bit set: rank 1
    1 << 49,  # register 1, rest 0
    (5 << 49) | (1 << 20),
    FINGERPRINTS - 1,  # the largest fingerprint: last register, rank 1
]


def test_registers_equal_the_bit_by_bit_oracle() -> None:
    values = [*EDGES, *distinct(2000, seed=1).tolist()]
    sketch = HyperLogLog().add(np.array(values, np.int64))
    assert sketch.registers.shape == (2**PRECISION,) and sketch.registers.dtype == np.uint8
    np.testing.assert_array_equal(sketch.registers, oracle_registers(values, PRECISION))
    assert sketch.registers[0] == 63 - PRECISION + 1 and sketch.registers[1] == 63 - PRECISION + 1


@pytest.mark.parametrize("precision", [10, 12, 16])
def test_registers_at_other_precisions_equal_the_oracle(precision: int) -> None:
    values = [*EDGES, *distinct(500, seed=precision).tolist()]
    sketch = HyperLogLog(precision).add(np.array(values, np.int64))
    np.testing.assert_array_equal(sketch.registers, oracle_registers(values, precision))


def test_registers_at_a_low_precision_equal_the_oracle() -> None:
    values = [(3 << 59) | ((1 << 59) - 1)]  # precision 4: register 3, rest = 2^59 - 1, rank 1
    sketch = HyperLogLog(4).add(np.array(values, np.int64))
    np.testing.assert_array_equal(sketch.registers, oracle_registers(values, 4))


@pytest.mark.parametrize("count", [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000])
def test_estimate_is_within_three_standard_errors(count: int) -> None:
    values = distinct(count, seed=count)
    estimate = HyperLogLog().add(values).estimate()
    assert isinstance(estimate, int)
    assert abs(estimate - count) <= 3 * STANDARD_ERROR * count


def test_small_counts_are_exact() -> None:
    # Linear counting over 16,384 registers: no two of a few values share a register here.
    for count in (1, 2, 7, 50):
        assert HyperLogLog().add(distinct(count, seed=count)).estimate() == count


def test_estimate_is_unbiased_where_linear_counting_hands_over() -> None:
    errors = [
        HyperLogLog().add(distinct(41_000, seed)).estimate() / 41_000 - 1 for seed in range(8)
    ]
    assert abs(np.mean(errors)) <= STANDARD_ERROR


def test_empty_sketch_estimates_zero() -> None:
    empty = HyperLogLog()
    assert empty.estimate() == 0
    assert empty.add(np.zeros(0, np.int64)).estimate() == 0
    assert not empty.registers.any()


def test_duplicates_do_not_count() -> None:
    values = distinct(5000, seed=3)
    once = HyperLogLog().add(values)
    thrice = HyperLogLog().add(np.concatenate([values, values[::-1], values]))
    np.testing.assert_array_equal(once.registers, thrice.registers)


def test_any_grouping_and_shape_gives_the_same_registers() -> None:
    values = distinct(6000, seed=4)
    whole = HyperLogLog().add(values)
    rng = np.random.default_rng(5)
    cuts = np.sort(rng.choice(np.arange(1, len(values)), size=9, replace=False))
    parts = np.split(rng.permutation(values), cuts)
    one_by_one = HyperLogLog()
    for part in parts:
        one_by_one.add(part)
    np.testing.assert_array_equal(one_by_one.registers, whole.registers)
    # (rows, probes) fingerprints as block_stats may pass them: any shape is flattened
    blocked = HyperLogLog().add(values.reshape(2000, 3))
    np.testing.assert_array_equal(blocked.registers, whole.registers)


def test_merge_equals_one_sketch_of_the_union() -> None:
    a, b = distinct(3000, seed=6), distinct(4000, seed=7)
    shared = a[:1000]  # overlap: the union has fewer values than both together
    union = np.concatenate([a, b, shared])
    merged = HyperLogLog().add(a).merge(HyperLogLog().add(np.concatenate([b, shared])))
    direct = HyperLogLog().add(union)
    np.testing.assert_array_equal(merged.registers, direct.registers)
    np.testing.assert_array_equal(
        merged.registers,
        np.maximum(HyperLogLog().add(a).registers, HyperLogLog().add(b).registers),
    )
    assert merged.estimate() == direct.estimate()
    assert abs(merged.estimate() - len(np.unique(union))) <= 3 * STANDARD_ERROR * 7000


def test_merge_in_any_order_and_with_empty_sketches() -> None:
    parts = [distinct(800, seed) for seed in range(4)]
    sketches = [HyperLogLog().add(p) for p in parts]
    forward, backward = HyperLogLog(), HyperLogLog()
    for s in sketches:
        forward.merge(s)
    for s in reversed(sketches):
        backward.merge(HyperLogLog()).merge(s)
    np.testing.assert_array_equal(forward.registers, backward.registers)
    np.testing.assert_array_equal(
        forward.registers, HyperLogLog().add(np.concatenate(parts)).registers
    )


def test_registers_round_trip_through_the_constructor() -> None:
    # How a sketch travels between workers: its precision and its registers.
    sketch = HyperLogLog().add(distinct(1000, seed=8))
    copy = HyperLogLog(sketch.precision, sketch.registers.copy())
    assert copy.estimate() == sketch.estimate()


@pytest.mark.parametrize("precision", [-1, 0, 3, 19, 64])
def test_precision_out_of_range_is_refused_naming_it(precision: int) -> None:
    with pytest.raises(ValueError, match="precision"):
        HyperLogLog(precision)


def test_merging_different_precisions_is_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="precision"):
        HyperLogLog(10).merge(HyperLogLog(12))
