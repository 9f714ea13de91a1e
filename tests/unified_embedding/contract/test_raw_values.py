"""How raw values travel by field kind: one table, asked instead of branching on kind names."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protos import prediction_pb2
from unified_embedding.contract.raw_values import NUMBERS, RAW_TYPES, STRINGS, missing_row, raw_type
from unified_embedding.contract.spec import KINDS, FieldSpec


def test_every_kind_has_a_raw_type():
    assert tuple(RAW_TYPES) == KINDS
    assert raw_type(FieldSpec("age", kind="numeric")) is NUMBERS
    assert raw_type(FieldSpec("city")) is STRINGS
    assert raw_type(FieldSpec("tags", kind="multi_valued", separator="|")) is STRINGS


def test_a_served_models_field_description_works_too():
    assert raw_type(prediction_pb2.Field(name="age", kind="numeric")) is NUMBERS


def test_values_are_checked_by_type():
    assert NUMBERS.value(3) == 3.0 and isinstance(NUMBERS.value(3), float)
    assert STRINGS.value(b"x") == b"x"
    for raw, wrong in ((NUMBERS, "3"), (NUMBERS, True), (NUMBERS, None), (STRINGS, 3)):
        with pytest.raises(TypeError, match=r"a number|a string"):
            raw.value(wrong)


def test_columns_and_text():
    assert NUMBERS.accepts(np.array([1, 2])) and not NUMBERS.accepts(np.array(["1"]))
    assert STRINGS.accepts(np.array(["a"], object)) and not STRINGS.accepts(np.array([1.0]))
    parsed = NUMBERS.from_text(np.array([" 1.5", "", "  "]))
    assert parsed.dtype == np.float32 and parsed[0] == 1.5 and np.isnan(parsed[1:]).all()
    assert STRINGS.from_text(np.array(["a", ""], object)).tolist() == ["a", ""]
    with pytest.raises(ValueError):
        NUMBERS.from_text(np.array(["abc"]))


def test_missing_row():
    fields = (FieldSpec("age", kind="numeric"), FieldSpec("city"))
    row = missing_row(fields)
    assert math.isnan(row["age"]) and row["city"] == ""
