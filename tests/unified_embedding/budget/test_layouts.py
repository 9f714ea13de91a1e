"""The layout registry: every entry builds its layer, promises its parameter count, and the
places that used to list layouts by hand (CLI choices, figure labels, the study) ask it."""

import subprocess
import sys

import pytest
import tensorflow as tf

from unified_embedding.budget.layouts import LAYOUTS, REGISTRY, get_layout
from unified_embedding.budget.plan import plan_budget
from unified_embedding.contract.features import encode_features
from unified_embedding.contract.schemas import criteo
from unified_embedding.contract.spec import TableSpec
from unified_embedding.evaluation.budget_study import StudyConfig
from unified_embedding.evaluation.plots import LAYOUT_LABELS, LAYOUT_STYLES
from unified_embedding.training.experiment import build_embedding


def test_layouts_are_the_registry_keys_in_order() -> None:
    assert LAYOUTS == ("unified", "per_feature", "collisionless")
    assert all(REGISTRY[name].name == name for name in LAYOUTS)


def test_unknown_layout_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"should be one of .*Received: `layout='dense'`"):
        get_layout("dense")


@pytest.mark.parametrize("name", LAYOUTS)
def test_each_entry_builds_a_layer_of_the_planned_size(name: str) -> None:
    layout = get_layout(name)
    spec = criteo().replace(table=TableSpec(rows=16, width=8, num_tables=2))
    vocabularies = {f.name: ["a", "b", "c"] for f in spec.categorical_fields}
    plan = plan_budget(spec, 200_000, {name: 3 for name in vocabularies})
    layer = build_embedding(name, spec, plan, vocabularies if layout.needs_vocabulary else None)
    features = encode_features(spec, {n: tf.constant(["1", ""]) for n in spec.field_names})
    assert layer(features).shape == (2, 39, 16)
    assert layer.count_params() == layout.params(spec, plan, {n: 3 for n in vocabularies})
    assert layer.count_params() == plan.params[name]
    assert layout.table_variables(layer) == layer.trainable_variables


def test_only_the_vocabulary_layout_ignores_the_budget() -> None:
    assert [n for n in LAYOUTS if not REGISTRY[n].spends_budget] == ["collisionless"]
    assert [n for n in LAYOUTS if REGISTRY[n].needs_vocabulary] == ["collisionless"]


def test_figures_and_study_ask_the_registry() -> None:
    assert set(LAYOUT_LABELS) == set(LAYOUT_STYLES) == set(LAYOUTS)
    assert StudyConfig().layouts == LAYOUTS
    with pytest.raises(ValueError, match="`layouts` should be among"):
        StudyConfig(layouts=("dense",))


def test_collision_keys_are_those_the_pipeline_writes() -> None:
    from pipelines.stats import collision_rates

    spec = criteo()
    rates = collision_rates(spec, {f.name: 10 for f in spec.categorical_fields})
    written = set().union(*(entry.keys() for entry in rates.values()))
    declared = {key for layout in REGISTRY.values() for key in layout.collision_keys}
    assert written <= declared
    assert {key for key in declared if key.endswith("rate") and key not in written} == {
        "unified_collision_rate"  # only for fields with a vocabulary (criteo has none)
    }


def test_planning_a_budget_loads_no_tensorflow() -> None:
    code = (
        "import sys; from unified_embedding.budget.plan import plan_budget; "
        "from unified_embedding.contract.schemas import criteo; plan_budget(criteo(), 10**6); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
