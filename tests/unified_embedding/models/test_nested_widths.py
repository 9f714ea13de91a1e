"""Matryoshka nested widths: off by default (today's model, variable for variable), a loss that
averages the model's loss at every width, widths checked against the table, `--nested-widths`."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.unified_embedding.layers.test_embeddings import LAYOUTS, RAW, tiny_spec
from unified_embedding.contract.features import encode_features
from unified_embedding.models.autoint import AutoInt, build_autoint
from unified_embedding.models.config import AutoIntConfig
from unified_embedding.training.cli import build_parser, job_from

SMALL = AutoIntConfig(num_layers=1, num_heads=2, head_dim=4, dnn_units=(8,))


def nested_model(layout: str, widths: tuple[int, ...], width: int = 4) -> AutoInt:
    keras.utils.set_random_seed(0)
    spec = tiny_spec(width=width)
    model = build_autoint(LAYOUTS[layout](spec), dataclasses.replace(SMALL, nested_widths=widths))
    model(features(spec))
    return model


def features(spec) -> dict:  # type: ignore[no-untyped-def]
    return encode_features(spec, RAW)


def structure(model: AutoInt) -> list[tuple[str, tuple[int, ...], str]]:
    return [(v.name.split("/")[-1], tuple(v.shape), v.dtype.name) for v in model.weights]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_a_nested_model_has_the_plain_models_variables_and_full_width_logits(layout: str) -> None:
    plain = nested_model(layout, ())
    nested = nested_model(layout, (1, 2, plain.embedding.table_width))
    assert structure(nested) == structure(plain)
    spec = plain.embedding.spec
    np.testing.assert_array_equal(nested(features(spec)).numpy(), plain(features(spec)).numpy())
    assert plain.nested_widths == ()


def bce(labels: np.ndarray, logits: tf.Tensor) -> float:
    loss = keras.losses.binary_crossentropy(labels, logits, from_logits=True)
    return float(tf.reduce_mean(loss))


@pytest.mark.parametrize("layout", ["unified", "per_feature"])
def test_the_nested_loss_is_the_mean_loss_over_the_widths(layout: str) -> None:
    full = 4 if layout == "unified" else 8
    model = nested_model(layout, (1, 2, full))
    spec = model.embedding.spec
    labels = np.array([[1.0], [0.0], [1.0]], np.float32)
    loss = float(model.compute_loss({**features(spec), "label": tf.constant(labels)}))
    expected = sum(bce(labels, model(features(spec), width=w)) for w in (1, 2, full)) / 3
    assert loss == pytest.approx(expected, rel=1e-5)
    narrow = bce(labels, model(features(spec), width=1))
    assert narrow != pytest.approx(bce(labels, model(features(spec))), rel=1e-6)


@pytest.mark.parametrize(
    ("widths", "message"),
    [
        ((3, 4), r"divide the table's width 4 and include it. Received: `nested_widths=\(3, 4\)`"),
        ((1, 2), r"divide the table's width 4 and include it. Received: `nested_widths=\(1, 2\)`"),
    ],
)
def test_nested_widths_must_divide_the_table_width_and_include_it(
    widths: tuple[int, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        nested_model("unified", widths)


def test_nested_widths_are_sorted_unique_and_positive() -> None:
    assert AutoIntConfig(nested_widths=(8, 2, 4, 2)).nested_widths == (2, 4, 8)
    with pytest.raises(ValueError, match=r"`nested_widths` should all be >= 1"):
        AutoIntConfig(nested_widths=(0, 8))


@pytest.mark.parametrize("flag", [["2,4,8"], ["2", "4", "8"], ["2,4", "8"]])
def test_the_nested_widths_flag_takes_commas_or_spaces(flag: list[str]) -> None:
    args = build_parser().parse_args(["--data", "d", "--model-dir", "m", "--nested-widths", *flag])
    assert job_from(args).model.nested_widths == (2, 4, 8)
    default = job_from(build_parser().parse_args(["--data", "d", "--model-dir", "m"]))
    assert default.model.nested_widths == ()


def test_a_nested_widths_flag_that_is_not_a_number_is_refused(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--data", "d", "--model-dir", "m", "--nested-widths", "2,x"])
    assert "invalid int value: '2,x'" in capsys.readouterr().err
