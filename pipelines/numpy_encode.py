"""`features.encode_features` in NumPy and pyarrow, for the pipeline's workers: the same values
bit for bit (tests/pipelines/test_numpy_encode.py holds it to `encode_features` on random
and edge-case cells), without importing TensorFlow, which costs each job seconds to start.

    encoded = encode_cells(spec, cells)   # cells: {field: pa.StringArray}, e.g. distinct cells
    encoded["I1"]   # float32 (n,): the transformed number, NaN where missing
    encoded["C1"]   # int64 (n, probes): fingerprints (`hashing.fingerprint_packed`)
    encoded["m"]    # multi-valued: (int64 (values, probes), int64 lengths (n,))

Every categorical and multi-valued field is hashed in one call: the cost of a call is paid
once per block, not once per field.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from unified_embedding.contract.hashing import fingerprint_packed
from unified_embedding.contract.spec import FeatureSpec, FieldSpec
from unified_embedding.rows.arrow_tensors import pack_strings

Encoded = dict[str, object]
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # the smallest normal float32


def encode_cells(spec: FeatureSpec, cells: Mapping[str, pa.Array]) -> Encoded:
    """Every field of `spec` from its text cells (missing-value tokens count as missing)."""
    missing = pa.array(spec.input_format.missing, pa.string())
    cells = {f.name: _blank(cells[f.name], missing) for f in spec.fields}
    out: Encoded = {f.name: numeric_values(cells[f.name], f) for f in spec.numeric_fields}
    hashed = [f for f in spec.fields if f.is_categorical]
    values, lengths = [], []
    for f in hashed:
        if f.kind == "multi_valued":
            assert f.separator is not None
            split = pc.split_pattern(cells[f.name], f.separator)
            values.append(pc.list_flatten(split))
            lengths.append(pc.list_value_length(split).to_numpy().astype(np.int64))
        else:
            values.append(cells[f.name])
    fingerprints = fingerprint_fields(values, [(f.name, f.probes) for f in hashed])
    multi = iter(lengths)
    for f, ids in zip(hashed, fingerprints, strict=True):
        out[f.name] = (ids, next(multi)) if f.kind == "multi_valued" else ids
    return out


def fingerprint_fields(values: list[pa.Array], fields: list[tuple[str, int]]) -> list[np.ndarray]:
    """int64 (len(values[i]), probes) fingerprints of each (field, probes): one hashing call
    for all of them."""
    data, starts, lengths = pack_strings(values)
    return fingerprint_packed(data, starts, lengths, [len(v) for v in values], fields)


def numeric_values(cells: pa.Array, field: FieldSpec) -> np.ndarray:
    """Number cells (validated: empty or a decimal number) -> float32, transformed as
    `kinds.transform_numeric`: in float64, rounded to float32; NaN where missing."""
    present = pc.if_else(pc.equal(pc.utf8_trim_whitespace(cells), ""), None, cells)
    parsed = pc.cast(present, pa.float32()).to_numpy(zero_copy_only=False)
    x = np.asarray(parsed, np.float32).astype(np.float64)  # None -> NaN
    # TensorFlow's kernels flush subnormal numbers to zero (keeping the sign): so do we
    x = np.where(np.abs(x) < _FLOAT32_TINY, x * 0.0, x)
    with np.errstate(invalid="ignore"):
        if field.transform == "log1p":
            x = np.sign(x) * np.log1p(np.abs(x))
        elif field.transform == "log_square":
            magnitude = np.abs(x)
            squared = np.sign(x) * np.floor(np.square(np.log(np.maximum(magnitude, 1.0))))
            x = np.where(magnitude > 2.0, squared, x)
        elif field.transform != "identity":
            raise ValueError(
                f"unknown numeric transform. Received: `transform={field.transform!r}`"
            )
    return x.astype(np.float32)


def _blank(cells: pa.Array, missing: pa.Array) -> pa.Array:
    """Text cells (nulls and missing-value tokens empty), as `features.blank_missing`."""
    if isinstance(cells, pa.ChunkedArray):
        cells = cells.combine_chunks()
    if cells.type != pa.string():
        cells = cells.cast(pa.string())
    cells = cells.fill_null("") if cells.null_count else cells
    if len(missing):
        cells = pc.if_else(pc.is_in(cells, value_set=missing), "", cells)
    return cells
