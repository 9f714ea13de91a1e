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
_BITS = 63  # fingerprints are in [0, 2^63 - 1)


class HyperLogLog:
    def __init__(self, precision: int = PRECISION, registers: np.ndarray | None = None) -> None:
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
        # bit length via the float exponent: exact, as rest < 2^49 fits a float64's mantissa
        rank = (rest_bits + 1 - np.frexp(rest.astype(np.float64))[1]).astype(np.uint8)
        np.maximum.at(self.registers, index, rank)
        return self

    def merge(self, other: HyperLogLog) -> HyperLogLog:
        np.maximum(self.registers, other.registers, out=self.registers)
        return self

    def estimate(self) -> int:
        m = float(len(self.registers))
        alpha = 0.7213 / (1.0 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.exp2(-self.registers.astype(np.float64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            return round(m * np.log(m / zeros))
        return round(raw)
