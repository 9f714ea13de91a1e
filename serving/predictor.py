"""One exported SavedModel version and its contract: validates requests, runs the model.

No gRPC here: requests arrive as plain Python values (rows of `{field: value}`) or NumPy columns
and leave as NumPy arrays, so the predictor is tested without a server.

    predictor = Predictor.load("export/1700000000")
    batch = predictor.pack_rows([{"I1": 3.0, ..., "C1": "68fd1e64", ...}])  # or InvalidRequest
    batch = predictor.pack_ranking({"C1": "user-7"}, {"I1": floats, ..., "C2": strings, ...})
    predictor.predict(batch)  # float32 (rows,), the `packed` signature: the fast path

Any mix of field kinds is served, including none of a kind: a model without numeric fields gets
a (rows, 0) `numeric` input, one without categorical fields a (rows, 0) `categorical` input.

Every batch is checked against the model's contract before it reaches the batcher: the row
count (`max_rows`), finite numbers, and the cell length of `spec.input_format.max_field_chars`
(the limit preprocessing and scoring dead-letter longer cells by), so all three APIs refuse what
the offline path refuses. A cell is counted in characters, as preprocessing counts them (Arrow's
`utf8_length`): a str's code points; bytes (tf.Example bytes_list, string_val, `{"b64": ...}`)
as UTF-8 (bytes other than continuation bytes 0b10xxxxxx). Bytes are never fewer than
characters, so one `len()` per cell is the whole test until a cell passes the limit in bytes; a
multi-byte cell that preprocessing accepts is never refused. A multi-valued cell counts whole,
values and separators, as in the file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.config import PredictorConfig
from serving.model_call import FunctionCalls, ModelCalls, SessionCalls
from unified_embedding.contract.raw_values import (
    NUMBERS,
    STRINGS,
    RawType,
    Value,
    missing_row,
    raw_type,
)
from unified_embedding.contract.spec import FeatureSpec, SpecError
from unified_embedding.exported.model import (
    ExportedModel,
    InconsistentModel,
    check_signatures,
    top_pairs,
)
from unified_embedding.exported.versions import ModelFolder, parse_version


class InvalidRequest(ValueError):
    """A request the model cannot take; the message names the field and the value."""


@dataclass(frozen=True)
class PackedBatch:
    """The `packed` signature's inputs, columns in spec order."""

    categorical: np.ndarray  # (rows, categorical fields) object: str or bytes
    numeric: np.ndarray  # (rows, numeric fields) float32, NaN = missing

    def __len__(self) -> int:
        return int(self.categorical.shape[0])

    @staticmethod
    def concat(batches: Sequence[PackedBatch]) -> PackedBatch:
        if len(batches) == 1:
            return batches[0]
        return PackedBatch(
            np.concatenate([b.categorical for b in batches]),
            np.concatenate([b.numeric for b in batches]),
        )


@dataclass(frozen=True)
class FieldPair:
    source: str
    target: str
    weight: float


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind_of(array: np.ndarray | None) -> str:
    if array is None:
        return "no values"
    if array.ndim != 1:
        return f"an array of shape {array.shape}"
    for raw in (NUMBERS, STRINGS):
        if raw.accepts(array):
            return raw.name
    return str(array.dtype)


def _check_rows(count: int, max_rows: int) -> None:
    if count == 0:
        raise InvalidRequest("the request has no rows; send at least one")
    if count > max_rows:
        raise InvalidRequest(f"the request has {count} rows; at most {max_rows} are allowed")


_FINITE = "numbers must be finite float32 values (NaN = missing)"


def _check_finite(numeric: np.ndarray, names: Sequence[str], where: str = "") -> None:
    """NaN means missing; an infinity is an error naming the first bad row and field."""
    bad = np.isinf(numeric)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidRequest(
            f"{where}row {r}: field `{names[c]}`: received {numeric[r, c]}; {_FINITE}"
        )


def _chars(cell: str | bytes) -> int:
    """A cell's length as preprocessing counts it: characters (UTF-8 code points)."""
    if isinstance(cell, str):
        return len(cell)
    data = np.frombuffer(cell, np.uint8)
    return int(np.count_nonzero((data & 0xC0) != 0x80))  # every byte that starts a character


def _too_long(at: str, name: str, cell: str | bytes, limit: int) -> InvalidRequest:
    return InvalidRequest(
        f"{at}field `{name}` has {_chars(cell)} characters; at most {limit} "
        "are allowed (the model's `max_field_chars`)"
    )


def _check_lengths(cells: np.ndarray, names: Sequence[str], limit: int, where: str = "") -> None:
    """`cells` (rows, len(names)) strings: a cell longer than `limit` characters is an
    InvalidRequest naming the row, the field and the length (never the value).

    One `len()` per cell (str: characters; bytes: bytes >= characters) decides for all but the
    cells longer than `limit` in bytes, which are counted in characters."""
    flat = cells.ravel()
    try:
        if not flat.size or max(map(len, flat)) <= limit:
            return
    except TypeError:  # not a string: named below
        pass
    columns = cells.shape[1] if cells.ndim == 2 else 1
    for i, cell in enumerate(flat.tolist()):
        r, c = divmod(i, columns)
        if not isinstance(cell, str | bytes):
            raise InvalidRequest(
                f"{where}row {r}: field `{names[c]}`: expected a string, received {_describe(cell)}"
            )
        if len(cell) > limit and _chars(cell) > limit:
            raise _too_long(f"{where}row {r}: ", names[c], cell, limit)


@dataclass(frozen=True)
class _Slot:
    """Where a field's values go: its raw type and its column of that type's `packed` input."""

    raw: RawType
    column: int


class _Packing:
    """The `packed` inputs being filled: one array per input, columns in spec order."""

    def __init__(self, rows: int, widths: Mapping[str, int]) -> None:
        raws = {NUMBERS.packed_input: NUMBERS, STRINGS.packed_input: STRINGS}
        self.arrays = {name: raws[name].empty(rows, width) for name, width in widths.items()}

    def column(self, slot: _Slot) -> np.ndarray:
        return self.arrays[slot.raw.packed_input][:, slot.column]

    def batch(self, names: Sequence[str], where: str = "") -> PackedBatch:
        numeric = self.arrays[NUMBERS.packed_input]
        _check_finite(numeric, names, where)
        return PackedBatch(self.arrays[STRINGS.packed_input], numeric)

    @property
    def categorical(self) -> np.ndarray:
        return self.arrays[STRINGS.packed_input]


def _value(raw: RawType, name: str, value: Value, at: str) -> float | str | bytes:
    """One request value of field `name`, or InvalidRequest naming the field and the value."""
    try:
        return raw.value(value)
    except TypeError as e:
        if value is None:
            raise InvalidRequest(
                f"{at}field `{name}`: received no value ({raw.missing_text} = missing)"
            ) from None
        raise InvalidRequest(
            f"{at}field `{name}`: expected {e}, received {_describe(value)}"
        ) from None
    except OverflowError:  # an int beyond float64 (JSON 1e400 is inf, 10**400 an int)
        raise InvalidRequest(
            f"{at}field `{name}`: received {_describe(value)}; {_FINITE}"
        ) from None


class Predictor:
    """A loaded SavedModel version; thread-safe (TensorFlow calls are). `calls` runs the model
    (`serving.model_call`); None: the `tf.function` signatures of `loaded`."""

    def __init__(
        self,
        path: Path,
        spec: FeatureSpec,
        loaded: Any,
        config: PredictorConfig,
        calls: ModelCalls | None = None,
    ) -> None:
        self.path = path
        self.version = int(path.name)
        self.spec = spec
        self.config = config
        self.calls = FunctionCalls(loaded) if calls is None else calls
        self.categorical_names = tuple(f.name for f in spec.categorical_fields)
        self.max_field_chars = spec.input_format.max_field_chars
        self.numeric_names = tuple(f.name for f in spec.numeric_fields)
        self._widths = {
            STRINGS.packed_input: len(self.categorical_names),
            NUMBERS.packed_input: len(self.numeric_names),
        }  # signature order
        self._slots = {}
        for names in (self.categorical_names, self.numeric_names):
            fields = [spec.field(name) for name in names]
            self._slots.update({f.name: _Slot(raw_type(f), i) for i, f in enumerate(fields)})

    @classmethod
    def load(
        cls,
        path: str | Path,
        config: PredictorConfig = PredictorConfig(),  # noqa: B008 (frozen)
    ) -> Predictor:
        """Loads `<base>/<version>` (`ExportedModel.load_folder`), served by session callables
        (`SessionCalls`); raises SpecError or InconsistentModel when the version's spec.json is
        invalid or disagrees with its signatures (and TF's errors when unloadable)."""
        path = Path(path)
        version = parse_version(path.name)
        if version is None:
            raise InconsistentModel(
                f"a version folder is a number within int64 (ASCII digits, no leading zeros). "
                f"Received: `{path.name}`"
            )
        model = ExportedModel.load_folder(ModelFolder(str(path), version))
        calls = SessionCalls.load(path, model.spec.field_names)
        return cls(path, model.spec, None, config, calls)  # `model` is released: calls serve

    @property
    def packed_widths(self) -> Mapping[str, int]:
        """The `packed` signature's inputs and their widths (fields per input)."""
        return self._widths

    def raw_type(self, name: str) -> RawType:
        """How field `name`'s values travel (KeyError for unknown fields)."""
        return self._slots[name].raw

    @property
    def fingerprint(self) -> str:
        return self.spec.fingerprint

    # Validation --------------------------------------------------------------------------
    def pack_rows(self, rows: Sequence[Mapping[str, Value]]) -> PackedBatch:
        """Rows of `{field: value}` -> PackedBatch. Categorical fields take strings ("" =
        missing), numeric fields numbers (NaN = missing); every field exactly once."""
        _check_rows(len(rows), self.config.max_rows)
        packing = _Packing(len(rows), self._widths)
        targets = {
            name: (packing.arrays[slot.raw.packed_input], slot.column, slot.raw.value)
            for name, slot in self._slots.items()
        }
        with np.errstate(over="ignore"):  # beyond float32 is inf, refused below by name
            for r, row in enumerate(rows):
                if len(row) != len(targets) or not all(k in targets for k in row):
                    self._raise_for_fields(r, row)
                for name, value in row.items():
                    array, column, check = targets[name]
                    try:
                        array[r, column] = check(value)
                    except (TypeError, OverflowError):
                        _value(self._slots[name].raw, name, value, f"row {r}: ")  # raises
        self._check_lengths(packing.categorical)
        return packing.batch(self.numeric_names)

    def pack_columns(self, columns: Mapping[str, np.ndarray]) -> PackedBatch:
        """One 1-D array per field (strings/bytes for categorical fields, float32 for numeric
        ones), as the `serving_default` signature takes them."""
        return self.pack_ranking({}, columns, where="")

    def pack_ranking(
        self,
        context: Mapping[str, Value],
        candidates: Mapping[str, np.ndarray | None],
        where: str = "candidates: ",
    ) -> PackedBatch:
        """A ranking request: `context` values shared by every candidate (sent once) and the
        other fields column-wise, one 1-D array per field (strings for categorical fields,
        numbers for numeric ones). Every field appears exactly once; rows keep candidate order.
        """
        both = sorted(set(context) & set(candidates))
        if both:
            raise InvalidRequest(
                f"field `{both[0]}` is given in both context and candidates; give it in one of them"
            )
        for part, names in (("context: ", context), (where, candidates)):
            unknown = sorted(set(names) - set(self._slots))
            if unknown:
                raise InvalidRequest(
                    f"{part}unknown field `{unknown[0]}`; the model's fields "
                    f"are {list(self.spec.field_names)}"
                )
        missing = [n for n in self.spec.field_names if n not in context and n not in candidates]
        if missing:
            raise InvalidRequest(f"missing field `{missing[0]}`")
        for name, array in candidates.items():  # one 1-D column per field, of its raw type
            raw = self._slots[name].raw
            if array is None or array.ndim != 1 or not raw.accepts(array):
                raise InvalidRequest(
                    f"{where}field `{name}`: expected {raw.name}, received {_kind_of(array)}"
                )
        sizes = {name: len(array) for name, array in candidates.items() if array is not None}
        if len(set(sizes.values())) > 1:
            raise InvalidRequest(f"{where}fields have different numbers of rows: {sizes}")
        rows = next(iter(sizes.values()), 0)
        _check_rows(rows, self.config.max_rows)
        packing = _Packing(rows, self._widths)
        limit = self.max_field_chars
        for name, value in context.items():  # one value per field, broadcast to every row
            slot = self._slots[name]
            value = _value(slot.raw, name, value, "context: ")
            if isinstance(value, float) and math.isinf(value):
                raise InvalidRequest(f"context: field `{name}`: received {value}; {_FINITE}")
            if not isinstance(value, float) and len(value) > limit and _chars(value) > limit:
                raise _too_long("context: ", name, value, limit)
            packing.column(slot)[:] = value
        for name, array in candidates.items():
            assert array is not None  # checked above
            packing.column(self._slots[name])[:] = array
            if self._slots[name].raw is STRINGS:  # the context's cells are checked above
                _check_lengths(array.reshape(-1, 1), (name,), limit, where)
        return packing.batch(self.numeric_names, where)

    def check_packed(self, categorical: np.ndarray, numeric: np.ndarray) -> PackedBatch:
        """The `packed` inputs as given: shapes (rows, categorical) and (rows, numeric)."""
        for name, array in (("categorical", categorical), ("numeric", numeric)):
            if array.ndim != 2 or array.shape[1] != self._widths[name]:
                raise InvalidRequest(
                    f"input `{name}`: expected shape (rows, {self._widths[name]}), "
                    f"received {tuple(array.shape)}"
                )
        if categorical.shape[0] != numeric.shape[0]:
            raise InvalidRequest(
                f"inputs `categorical` and `numeric` have different numbers of rows: "
                f"{categorical.shape[0]} and {numeric.shape[0]}"
            )
        _check_rows(categorical.shape[0], self.config.max_rows)
        numeric = numeric.astype(np.float32, copy=False)
        _check_finite(numeric, self.numeric_names, "input `numeric`: ")
        categorical = categorical.astype(object, copy=False)
        self._check_lengths(categorical, "input `categorical`: ")
        return PackedBatch(categorical, numeric)

    def _check_lengths(self, categorical: np.ndarray, where: str = "") -> None:
        _check_lengths(categorical, self.categorical_names, self.max_field_chars, where)

    def _raise_for_fields(self, r: int, row: Mapping[str, Value]) -> None:
        for name in row:
            if name not in self._slots:
                raise InvalidRequest(f"row {r}: unknown field `{name}`")
        for name in self.spec.field_names:
            if name not in row:
                raise InvalidRequest(f"row {r}: missing field `{name}`")

    # The model ---------------------------------------------------------------------------
    def predict(self, batch: PackedBatch) -> np.ndarray:
        """Click probabilities, float32 (rows,)."""
        return self.calls.packed(batch.categorical, batch.numeric)

    def explain(self, batch: PackedBatch, top_k: int) -> list[list[FieldPair]]:
        """Per row, the `top_k` (source, target) field pairs with the largest attention weight,
        averaged over interacting layers and heads; a field attending to itself is left out
        (`exported.model.top_pairs`)."""
        columns = {n: batch.categorical[:, i] for i, n in enumerate(self.categorical_names)}
        columns.update({n: batch.numeric[:, i] for i, n in enumerate(self.numeric_names)})
        pairs, weights = top_pairs(self.calls.attention(columns), top_k)
        names, fields = self.spec.field_names, len(self.spec.fields)
        return [
            [
                FieldPair(names[k // fields], names[k % fields], float(w))
                for k, w in zip(row_pairs, row_weights, strict=True)
            ]
            for row_pairs, row_weights in zip(
                pairs.numpy().tolist(), weights.numpy().tolist(), strict=True
            )
        ]

    def missing_row(self) -> dict[str, Value]:
        """A valid row with every value missing (warm-up, health probes)."""
        return missing_row(self.spec.fields)


__all__ = [
    "FieldPair",
    "InconsistentModel",
    "InvalidRequest",
    "PackedBatch",
    "Predictor",
    "PredictorConfig",
    "SpecError",
    "check_signatures",
]
