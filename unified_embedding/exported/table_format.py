"""A trained model with its table as an export serves it: the first `width` columns of every row,
float32 or row-wise int8 (`ue export --table-width --table-dtype`).

    served, spec = served_model(model, run.feature_spec(), width=4, dtype="int8")
    export(served, spec, "export/")        # spec.json records table.served_width and served_dtype

The served model shares the trained model's attention, head and DNN; only its embedding layer is
rebuilt, from the spec with `served_width`/`served_dtype` set, and filled by `copy_from`. A width
narrower than the table's must be one the model was trained at (`AutoIntConfig.nested_widths`):
other prefixes of a row were never trained to serve alone.
"""

from __future__ import annotations

import dataclasses

from unified_embedding.contract.kinds import kind_of
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.layers.field_embedding import FieldEmbedding
from unified_embedding.models.autoint import AutoInt


def served_spec(spec: FeatureSpec, width: int | None, dtype: str, table_width: int) -> FeatureSpec:
    """`spec` with its table served at `width` (None or `table_width`: whole) as `dtype`."""
    served_width = None if width == table_width else width
    table = dataclasses.replace(spec.table, served_width=served_width, served_dtype=dtype)
    return spec.replace(table=table)


def check_width(model: AutoInt, width: int | None) -> None:
    """Refuses a width the model's table was not trained to serve at."""
    table_width = model.embedding.table_width
    if width is None or width == table_width:
        return
    trained = model.nested_widths or (table_width,)
    if width not in trained:
        raise ValueError(
            f"`--table-width` should be a width the model was trained at: {list(trained)} "
            f"(`ue train --nested-widths`). Received: `--table-width {width}`"
        )


def served_model(
    model: AutoInt, spec: FeatureSpec, width: int | None = None, dtype: str = "float32"
) -> tuple[AutoInt, FeatureSpec]:
    """`model` (built, trained) with its table served at `width` columns as `dtype`, and the
    spec to export it with. Whole and float32: `model` and `spec` themselves."""
    embedding = model.embedding
    if not isinstance(embedding, FieldEmbedding):
        raise TypeError(f"a served table needs a `FieldEmbedding`. Received: {type(embedding)}")
    check_width(model, width)
    table_width = embedding.table_width
    out_spec = served_spec(spec, width, dtype, table_width)
    if out_spec.table.is_served_whole:
        return model, spec
    layer_spec = served_spec(embedding.spec, width, dtype, table_width)
    config = {**embedding.get_config(), "spec": layer_spec.to_dict()}
    served = type(embedding).from_config(config)
    out = AutoInt(served, model.interaction, model.head, model.dnn, label_key=model.label_key)
    out({f.name: kind_of(f).dummy_input(f) for f in out_spec.fields})  # builds the table
    served.copy_from(embedding)
    return out, out_spec
