"""`--model-config-file`: TF Serving's `ModelServerConfig` text format -> our frozen configs.

    model_config_list {
      config {
        name: "ranker"  base_path: "/models/ranker"  model_platform: "tensorflow"
        model_version_policy { latest { num_versions: 2 } }   # or specific {versions: 7}, all {}
        version_labels { key: "stable" value: 7 }
      }
    }

A policy left out is TF Serving's default, the newest version. Parsed with the
`tensorflow_serving.config` protos, so a file TF Serving takes is taken here; anything we cannot
honour (a custom config, another platform, a duplicate name, a label to a version the policy
never serves) is a one-line ModelConfigError naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

PLATFORM = "tensorflow"


class ModelConfigError(ValueError):
    """A model config file we cannot serve; the message names the file and the problem."""


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a base path serve side by side (TF Serving's ServableVersionPolicy).

    Args:
        latest: serve the newest `latest` versions (the policy when `versions` is None).
        versions: serve exactly these versions (`specific`); empty with `all_versions`.
        all_versions: serve every version found.
    """

    latest: int = 1
    versions: tuple[int, ...] | None = None
    all_versions: bool = False

    def __post_init__(self) -> None:
        if self.latest < 1:
            raise ValueError(f"`latest` should be >= 1. Received: `latest={self.latest}`")

    def select(self, available: Sequence[int]) -> set[int]:
        """The versions to serve out of those `available` (loadable) on disk."""
        if self.all_versions:
            return set(available)
        if self.versions is not None:
            return set(self.versions) & set(available)
        return set(sorted(available)[-self.latest :])

    def describe(self) -> str:
        if self.all_versions:
            return "all"
        if self.versions is not None:
            return f"specific {list(self.versions)}"
        return f"latest {self.latest}"


@dataclass(frozen=True)
class ModelConfig:
    """One served model: its name, its export base, its version policy and labels."""

    name: str
    base_path: Path
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


def _policy(config: model_server_config_pb2.ModelConfig) -> VersionPolicy:
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return VersionPolicy(all_versions=True)
    if kind == "specific":
        return VersionPolicy(versions=tuple(sorted(set(policy.specific.versions))))
    if kind == "latest" and policy.latest.num_versions > 0:
        return VersionPolicy(latest=policy.latest.num_versions)
    return VersionPolicy()


def _model(config: model_server_config_pb2.ModelConfig, where: str) -> ModelConfig:
    name = config.name
    if not name:
        raise ModelConfigError(f"{where}: a model config has no `name`")
    if not config.base_path:
        raise ModelConfigError(f"{where}: model `{name}` has no `base_path`")
    if config.model_platform not in ("", PLATFORM):
        raise ModelConfigError(
            f"{where}: model `{name}`: `model_platform` should be "
            f"{PLATFORM!r}. Received: {config.model_platform!r}"
        )
    policy = _policy(config)
    if policy.versions is not None and not policy.versions:
        raise ModelConfigError(f"{where}: model `{name}`: a `specific` policy lists no versions")
    labels = dict(config.version_labels)
    for label, version in sorted(labels.items()):
        if policy.versions is not None and version not in policy.versions:
            raise ModelConfigError(
                f"{where}: model `{name}`: label `{label}` points to version "
                f"{version}, which its policy ({policy.describe()}) does "
                "not serve"
            )
    return ModelConfig(name, Path(config.base_path), policy, MappingProxyType(labels))


def parse_model_config(text: str, where: str = "<model config>") -> tuple[ModelConfig, ...]:
    """The models of a `ModelServerConfig` in text format; ModelConfigError names `where`."""
    proto = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, proto)
    except text_format.ParseError as e:
        raise ModelConfigError(f"{where}: not a ModelServerConfig in text format: {e}") from None
    if proto.WhichOneof("config") == "custom_model_config":
        raise ModelConfigError(
            f"{where}: `custom_model_config` is not supported; use `model_config_list`"
        )
    models = tuple(_model(c, where) for c in proto.model_config_list.config)
    seen: set[str] = set()
    for model in models:
        if model.name in seen:
            raise ModelConfigError(f"{where}: model name `{model.name}` appears twice")
        seen.add(model.name)
    if not models:
        raise ModelConfigError(f"{where}: `model_config_list` names no model")
    return models


def load_model_config(path: Path) -> tuple[ModelConfig, ...]:
    """Reads and parses `path`; ModelConfigError (naming the file) when it cannot be used."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ModelConfigError(f"{path}: cannot read the model config file: {e}") from None
    return parse_model_config(text, str(path))


__all__ = [
    "ModelConfig",
    "ModelConfigError",
    "VersionPolicy",
    "load_model_config",
    "parse_model_config",
]
