"""How a field's raw values travel outside TensorFlow: numbers or strings, by field kind.

    raw = raw_type(field)            # NUMBERS or STRINGS
    raw.value(x)                     # one request value, checked (TypeError names what came)
    raw.accepts(column)              # a 1-D NumPy column of the right type?
    raw.from_text(cells)             # text cells -> a column ("" = missing)
    raw.packed_input                 # the `packed` signature input that holds the field

    kind          raw values                          missing   `packed` input
    numeric       numbers, float32                    NaN       numeric
    categorical   strings (str or bytes)              ""        categorical
    multi_valued  strings, values split in-graph      ""        categorical

Requests, clients and the predictor ask `raw_type(field)` instead of comparing `field.kind`
to a name. No TensorFlow here, so clients start fast; `kinds.py` (the kinds' TensorFlow side)
takes its raw dtypes from this table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import ClassVar, Protocol

import numpy as np

Value = str | bytes | float | int | None


class RawType:
    name: ClassVar[str]  # how errors name it: "numbers" or "strings"
    packed_input: ClassVar[str]
    dtype: ClassVar[np.dtype]
    tf_dtype: ClassVar[str]  # the raw-features signatures' dtype name
    missing: ClassVar[float | str]
    missing_text: ClassVar[str]  # how messages spell the missing value

    def value(self, value: Value) -> float | str | bytes:
        """One request value as the column holds it; TypeError when it is not of this type."""
        raise NotImplementedError

    def accepts(self, column: np.ndarray) -> bool:
        raise NotImplementedError

    def from_text(self, cells: np.ndarray) -> np.ndarray:
        """Text cells (empty = missing) -> a column of this type."""
        raise NotImplementedError

    def empty(self, rows: int, columns: int) -> np.ndarray:
        return np.empty((rows, columns), dtype=self.dtype)


class Numbers(RawType):
    name = "numbers"
    packed_input = "numeric"
    dtype = np.dtype(np.float32)
    tf_dtype = "float32"
    missing = math.nan
    missing_text = "NaN"

    def value(self, value: Value) -> float:
        if isinstance(value, float | int) and not isinstance(value, bool):
            return float(value)
        raise TypeError("a number")

    def accepts(self, column: np.ndarray) -> bool:
        return column.dtype.kind in "fiu"

    def from_text(self, cells: np.ndarray) -> np.ndarray:
        stripped = np.char.strip(cells.astype(str))
        return np.where(stripped == "", "nan", stripped).astype(np.float32)


class Strings(RawType):
    name = "strings"
    packed_input = "categorical"
    dtype = np.dtype(object)
    tf_dtype = "string"
    missing = ""
    missing_text = '""'

    def value(self, value: Value) -> str | bytes:
        if isinstance(value, str | bytes):
            return value
        raise TypeError("a string")

    def accepts(self, column: np.ndarray) -> bool:
        return column.dtype.kind in "OSU"

    def from_text(self, cells: np.ndarray) -> np.ndarray:
        return cells.astype(str)


NUMBERS = Numbers()
STRINGS = Strings()
RAW_TYPES: dict[str, RawType] = {
    "numeric": NUMBERS,
    "categorical": STRINGS,
    "multi_valued": STRINGS,
}


class Field(Protocol):
    """A FieldSpec, or a field as a served model describes it (`prediction_pb2.Field`)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...


def raw_type(field: Field) -> RawType:
    return RAW_TYPES[field.kind]


def missing_row(fields: Iterable[Field]) -> dict[str, Value]:
    """A row with every value missing (warm-up, health probes)."""
    return {f.name: raw_type(f).missing for f in fields}
