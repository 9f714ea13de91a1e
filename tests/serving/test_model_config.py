"""`--model-config-file`: TF Serving's ModelServerConfig text format parsed into our configs, each
bad file refused with one line naming it; version policies pick the versions to serve; a base
path without versions is logged."""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from serving.model_config import (
    ModelConfigError,
    VersionPolicy,
    load_model_config,
    parse_model_config,
)
from serving.model_manager import ManagerConfig, ModelManager

VALID = """
model_config_list {
  config {
    name: "ranker"
    base_path: "/models/ranker"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 2 } }
    version_labels { key: "stable" value: 7 }
    version_labels { key: "canary" value: 9 }
  }
  config { name: "pinned" base_path: "/models/pinned"
           model_version_policy { specific { versions: 3 versions: 1 } }
           version_labels { key: "old" value: 1 } }
  config { name: "every" base_path: "/models/every" model_version_policy { all {} } }
  config { name: "plain" base_path: "/models/plain" }
}
"""


def test_a_valid_file_becomes_one_config_per_model(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    path.write_text(VALID)
    ranker, pinned, every, plain = load_model_config(path)
    assert (ranker.name, ranker.base_path) == ("ranker", Path("/models/ranker"))
    assert ranker.policy == VersionPolicy(latest=2)
    assert dict(ranker.labels) == {"stable": 7, "canary": 9}
    assert pinned.policy == VersionPolicy(versions=(1, 3)) and dict(pinned.labels) == {"old": 1}
    assert every.policy == VersionPolicy(all_versions=True)
    assert plain.policy == VersionPolicy() and dict(plain.labels) == {}  # TF Serving: latest 1
    assert load_model_config(path) == (ranker, pinned, every, plain)  # equal when re-read


@pytest.mark.parametrize(
    ("policy", "available", "served"),
    [
        (VersionPolicy(), [3, 1, 2], {3}),
        (VersionPolicy(latest=2), [3, 1, 2], {2, 3}),
        (VersionPolicy(latest=5), [3, 1], {1, 3}),
        (VersionPolicy(versions=(1, 4)), [1, 2, 3], {1}),
        (VersionPolicy(all_versions=True), [1, 2, 3], {1, 2, 3}),
        (VersionPolicy(latest=2), [], set()),
    ],
)
def test_policies_select_versions(
    policy: VersionPolicy, available: list[int], served: set[int]
) -> None:
    assert policy.select(available) == served


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model_config_list { config { name: 'a' base_path: '/a' } ", "not a ModelServerConfig"),
        ("model_config_list { config { nam: 'a' } }", "not a ModelServerConfig"),
        (
            "model_config_list { config { name: 'a' base_path: '/a' } "
            "config { name: 'a' base_path: '/b' } }",
            "model name `a` appears twice",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/a' "
            "model_version_policy { specific { versions: 1 } } "
            "version_labels { key: 'stable' value: 2 } } }",
            "label `stable` points to version 2, which its policy (specific [1]) does not serve",
        ),
        (
            "model_config_list { config { name: 'a' base_path: '/a' model_platform: 'pytorch' } }",
            "`model_platform` should be 'tensorflow'. Received: 'pytorch'",
        ),
        ("model_config_list { config { name: 'a' } }", "model `a` has no `base_path`"),
        ("model_config_list { config { base_path: '/a' } }", "a model config has no `name`"),
        (
            "model_config_list { config { name: 'a' base_path: '/a' "
            "model_version_policy { specific { } } } }",
            "a `specific` policy lists no versions",
        ),
        ("custom_model_config { }", "`custom_model_config` is not supported"),
        ("", "names no model"),
    ],
)
def test_bad_files_fail_in_one_line_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "models.config"
    path.write_text(text)
    with pytest.raises(ModelConfigError, match=r"^" + str(path).replace(".", r"\.")) as e:
        load_model_config(path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unreadable_file_and_where_in_messages(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="cannot read the model config file"):
        load_model_config(tmp_path / "absent.config")
    with pytest.raises(ModelConfigError, match=r"^inline: model name `x` appears twice"):
        parse_model_config(
            "model_config_list { config { name: 'x' base_path: '/x' } "
            "config { name: 'x' base_path: '/y' } }",
            "inline",
        )


def test_manager_config_takes_a_base_path_or_a_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="give either `base_path` or `config_file`"):
        ManagerConfig()
    with pytest.raises(ValueError, match="give either `base_path` or `config_file`"):
        ManagerConfig(tmp_path, config_file=tmp_path / "m.config")
    with pytest.raises(ValueError, match="`config_poll_seconds=-1`"):
        ManagerConfig(tmp_path, config_poll_seconds=-1)
    (shortcut,) = ManagerConfig(tmp_path, model_name="m").models()
    assert (shortcut.name, shortcut.base_path, shortcut.policy) == ("m", tmp_path, VersionPolicy())
    (pinned,) = ManagerConfig(tmp_path, version=5).models()
    assert pinned.policy == VersionPolicy(versions=(5,))


def test_a_base_path_without_versions_is_logged_once_per_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A config whose base path does not exist used to log nothing, whatever the poll."""
    missing, empty = tmp_path / "ranker", tmp_path / "other"
    empty.mkdir()
    path = tmp_path / "models.config"
    path.write_text(
        f"model_config_list {{ config {{ name: 'ranker' base_path: '{missing}' }} "
        f"config {{ name: 'other' base_path: '{empty}' }} }}"
    )
    config = ManagerConfig(config_file=path, poll_seconds=0.5)
    with ThreadPoolExecutor(1) as executor, caplog.at_level(logging.INFO, "serving"):
        manager = ModelManager(config, executor)

        def poll() -> list[str]:
            start = len(caplog.records)
            for _ in range(3):
                asyncio.run(manager.poll())
            return [
                r.getMessage() for r in caplog.records[start:] if r.name == "serving.model_manager"
            ]

        assert sorted(poll()) == [
            f"model other: no versions found under base path {empty}; a version is a folder "
            f"named by a number, e.g. {empty / '1'}",
            f"model ranker: base path {missing} does not exist; no versions found (looking "
            "again every 0.5s)",
        ]
        missing.mkdir()
        assert poll() == [
            f"model ranker: no versions found under base path {missing}; a "
            f"version is a folder named by a number, e.g. {missing}/1"
        ]
        (missing / "1").mkdir()  # not a loadable version: its rejection is logged elsewhere
        assert poll() == [f"model ranker: versions found under base path {missing}"]
        assert poll() == []
        (missing / "1").rmdir()
        missing.rmdir()
        assert poll() == [
            f"model ranker: base path {missing} does not exist; no versions found "
            "(looking again every 0.5s)"
        ]
    warnings = [
        r
        for r in caplog.records
        if r.name == "serving.model_manager" and "no versions found" in r.getMessage()
    ]
    assert all(r.levelno == logging.WARNING for r in warnings) and len(warnings) == 4
