"""HyperLogLog distinct counts over fingerprints, updated a NumPy array at a time.

Apache DataSketches' Python sketches take one value per call; a block brings ~100k values per
field, so the registers are updated here with vectorised NumPy instead. The inputs are already
63-bit keyed SipHash fingerprints, so no further hashing is needed. Merging is a register-wise
max, so sketches built per block on any worker combine exactly (Flajolet et al. 2007, with the
small-range linear-counting correction).
"""

from __future__ import annotations

import numpy as np

PRECISION = 14  # 16,384 registers: ~0.8% standard error
MIN_PRECISION, MAX_PRECISION = 4, 18  # Flajolet et al.'s range (16 to 262,144 registers)
_BITS = 63  # fingerprints are in [0, 2^63 - 1)
# Linear counting is used while it estimates at most this many values per register: there the
# raw estimate is still biased (+2.4% at 2.5, +1.0% at 3.0 on 16,384 registers; measured).
_LINEAR_COUNTING_UP_TO = 3.0


class HyperLogLog:
    def __init__(self, precision: int = PRECISION, registers: np.ndarray | None = None) -> None:
        if not MIN_PRECISION <= precision <= MAX_PRECISION:
            raise ValueError(
                f"`precision` should be in [{MIN_PRECISION}, {MAX_PRECISION}]. "
                f"Received: `precision={precision}`"
            )
        self.precision = precision
        size = 1 << precision
        self.registers = np.zeros(size, np.uint8) if registers is None else registers

    def add(self, fingerprints: np.ndarray) -> HyperLogLog:
        """Adds int64 fingerprints in [0, 2^63) (any shape)."""
        values = np.asarray(fingerprints, dtype=np.int64).ravel().astype(np.uint64)
        if not len(values):
            return self
        rest_bits = _BITS - self.precision
        index = (values >> np.uint64(rest_bits)).astype(np.int64)
        rest = values & np.uint64((1 << rest_bits) - 1)
        rank = (rest_bits + 1 - _bit_length(rest)).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)
        return self

    def merge(self, other: HyperLogLog) -> HyperLogLog:
        if other.precision != self.precision:
            raise ValueError(
                f"Sketches of different precisions cannot merge: {self.precision} and "
                f"{other.precision}. Received: `other.precision={other.precision}`"
            )
        np.maximum(self.registers, other.registers, out=self.registers)
        return self

    def estimate(self) -> int:
        m = float(len(self.registers))
        alpha = 0.7213 / (1.0 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.exp2(-self.registers.astype(np.float64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if zeros:
            linear = m * np.log(m / zeros)
            if linear <= _LINEAR_COUNTING_UP_TO * m:
                return round(linear)
        return round(raw)


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Bit lengths of uint64 values below 2^63, exact: each 32-bit half fits a float64."""
    high = (values >> np.uint64(32)).astype(np.float64)
    low = (values & np.uint64(0xFFFFFFFF)).astype(np.float64)
    return np.where(high > 0, np.frexp(high)[1] + 32, np.frexp(low)[1])
