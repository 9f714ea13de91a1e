"""The one hashing function: pinned ids, stable across processes, salts tied to field names."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from unified_embedding.contract.features import encode_features
from unified_embedding.contract.hashing import MISSING, bucketize, fingerprint, probe_key
from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import FieldSpec, InputFormat

# (field, value) -> fingerprints of probes 0 and 1, and their rows in a 2^20-row table.
# Changing any of these breaks every trained model and every written record: don't.
GOLDEN = [
    ("C1", "68fd1e64", [5140749922575221522, 4576023071035944983], [426770, 454679]),
    ("C1", "", [6606446939538035749, 953829318553943762], [103461, 179922]),
    ("C2", "68fd1e64", [214551093679727184, 452953185194337934], [238160, 255630]),
    ("site_id", "1fbe01fe", [1384835944851638288, 7917883300600134070], [198672, 309686]),
    ("f0", "266", [2967142071240795211, 2168759919079774272], [828491, 710720]),
]


@pytest.mark.parametrize(("field", "value", "fingerprints", "rows"), GOLDEN)
def test_golden_ids(field: str, value: str, fingerprints: list[int], rows: list[int]) -> None:
    got = fingerprint(tf.constant([value]), field, probes=2)[0]
    assert got.numpy().tolist() == fingerprints
    assert bucketize(got, 2**20).numpy().tolist() == rows


def test_same_ids_in_fresh_processes() -> None:
    script = (
        "import json, os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "import tensorflow as tf\n"
        "from unified_embedding.contract.hashing import fingerprint\n"
        f"cases = {[(f, v) for f, v, _, _ in GOLDEN]!r}\n"
        "print(json.dumps([fingerprint(tf.constant([v]), f, 2)[0].numpy().tolist()"
        " for f, v in cases]))\n"
    )
    expected = [fps for _, _, fps, _ in GOLDEN]
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        assert json.loads(out.strip().splitlines()[-1]) == expected


def test_probes_differ_and_fields_differ() -> None:
    fps = fingerprint(tf.constant(["x"]), "C1", probes=4)[0].numpy()
    assert len(set(fps.tolist())) == 4
    other = fingerprint(tf.constant(["x"]), "C10", probes=4)[0].numpy()
    assert not set(fps.tolist()) & set(other.tolist())
    assert probe_key("C1", 0) != probe_key("C1", 1)


def test_reordering_or_adding_fields_keeps_other_fields_ids() -> None:
    spec = criteo()
    raw = {name: tf.constant(["7", "", "123"]) for name in spec.field_names}
    before = encode_features(spec, raw)
    fields = list(reversed(spec.fields))[:-3]  # reorder and drop three

    fields.insert(5, FieldSpec("C99"))
    columns = InputFormat(columns=(*spec.input_format.columns, "C99"))
    edited = spec.replace(fields=tuple(fields), input_format=columns)
    after = encode_features(edited, {**raw, "C99": raw["C1"]})
    for name, ids in after.items():
        if name != "C99":
            np.testing.assert_array_equal(ids.numpy(), before[name].numpy())


def test_missing_is_its_own_value_per_field() -> None:
    ids = fingerprint(tf.constant(["", MISSING, "a"]), "C1", probes=1)[:, 0].numpy()
    assert ids[0] == ids[1] != ids[2]
    assert ids[0] != fingerprint(tf.constant([""]), "C2", probes=1)[0, 0].numpy()


def test_fingerprints_are_non_negative_and_buckets_in_range() -> None:
    values = tf.constant([str(i) for i in range(5000)])
    fps = fingerprint(values, "C3", probes=3)
    assert fps.dtype == tf.int64 and fps.shape == (5000, 3)
    assert tf.reduce_min(fps).numpy() >= 0
    rows = bucketize(fps, 97).numpy()
    assert rows.min() >= 0 and rows.max() < 97
    # a uniform hash fills every row of a small table
    assert len(np.unique(rows)) == 97


def test_ragged_values_hash_like_dense_ones() -> None:
    ragged = tf.ragged.constant([["a", "b"], [], ["c"]])
    fps = fingerprint(ragged, "genres", probes=2)
    dense = fingerprint(tf.constant(["a", "b", "c"]), "genres", probes=2)
    np.testing.assert_array_equal(fps.flat_values.numpy(), dense.numpy())
    assert fps.row_lengths().numpy().tolist() == [2, 0, 1]
