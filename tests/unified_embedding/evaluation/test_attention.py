"""Attention averaging and top field pairs against NumPy oracles and hand-built matrices."""

import numpy as np
import pytest

from unified_embedding.evaluation.attention import mean_attention, model_attention, top_pairs


def test_mean_attention_averages_rows_layers_and_heads() -> None:
    rng = np.random.default_rng(0)
    raw = rng.random((4, 3, 2, 5, 5))
    attention = raw / raw.sum(-1, keepdims=True)  # rows of each head sum to 1
    got = mean_attention(attention)
    expected = np.zeros((5, 5))
    for b in range(4):
        for layer in range(3):
            for h in range(2):
                expected += attention[b, layer, h]
    np.testing.assert_allclose(got, expected / 24)
    np.testing.assert_allclose(got.sum(-1), 1.0)
    np.testing.assert_allclose(mean_attention(attention, layers=[2]), attention[:, 2].mean((0, 1)))


def test_mean_attention_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="batch, layers, heads"):
        mean_attention(np.ones((2, 3, 3)))


def test_top_pairs_symmetrises_and_orders_by_strength() -> None:
    #        a    b    c    d        pair strengths (m[i,j] + m[j,i]) / 2:
    # a   [ .1   .6   .2   .1 ]      a-b (.6+.5)/2 = .55   a-c (.2+.1)/2 = .15
    # b   [ .5   .1   .1   .3 ]      a-d (.1+.0)/2 = .05   b-c (.1+.6)/2 = .35
    # c   [ .1   .6   .2   .1 ]      b-d (.3+.2)/2 = .25   c-d (.1+.8)/2 = .45
    # d   [ .0   .2   .8   .0 ]
    m = np.array(
        [[0.1, 0.6, 0.2, 0.1], [0.5, 0.1, 0.1, 0.3], [0.1, 0.6, 0.2, 0.1], [0.0, 0.2, 0.8, 0.0]]
    )
    table = top_pairs(m, ["a", "b", "c", "d"], k=3)
    assert list(zip(table["field_a"], table["field_b"], strict=True)) == [
        ("a", "b"),
        ("c", "d"),
        ("b", "c"),
    ]
    np.testing.assert_allclose(table["strength"], [0.55, 0.45, 0.35])
    np.testing.assert_allclose(table["a_to_b"], [0.6, 0.1, 0.1])
    np.testing.assert_allclose(table["b_to_a"], [0.5, 0.8, 0.6])
    assert len(top_pairs(m, ["a", "b", "c", "d"], k=100)) == 6  # every pair once


def test_top_pairs_checks_names_match_matrix() -> None:
    with pytest.raises(ValueError, match="3 field names"):
        top_pairs(np.eye(4), ["a", "b", "c"])


def test_model_attention_takes_a_loaded_model_or_a_base(exported_model) -> None:  # type: ignore[no-untyped-def]
    from unified_embedding.contract.schemas import criteo
    from unified_embedding.exported.model import ExportedModel
    from unified_embedding.rows.reader import read_rows

    rows = read_rows(criteo(), exported_model.rows_file)
    model = ExportedModel.load(exported_model.version)
    loaded = model_attention(model, rows, max_rows=30, batch_size=16)
    by_base = model_attention(exported_model.export_base, rows, max_rows=30)
    fields = len(model.spec.fields)
    assert loaded.shape[0] == 30 and loaded.shape[-2:] == (fields, fields)
    np.testing.assert_allclose(loaded, by_base, atol=1e-6)
    np.testing.assert_allclose(loaded.sum(axis=-1), 1.0, atol=1e-5)  # each head's row: softmax
