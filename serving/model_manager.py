"""The served models: one `ModelVersions` per model, from `--model-base-path` (one model) or
`--model-config-file` (TF Serving's ModelServerConfig, re-read every `config_poll_seconds`).

    models.get("ranker")                    # the newest loaded version
    models.get("ranker", version=7)         # or a number, or a label of the config file
    models.get("ranker", label="stable")
    models.status("ranker")                 # [VersionStatus(version, state, error_message)]

Every `poll_seconds` each model follows its base path (`serving.model_versions`: warm-up before a
version serves, swaps that fail no request, bad versions skipped). A re-read config file adds
models (they start loading), removes models (new requests get NOT_FOUND at once; their versions
are released after the requests in flight) and changes policies and labels in place; a model
whose base path changes keeps serving from the old path until the new one has a version. A
malformed file is logged and the previous config kept.

A base path that does not exist, or holds no version folder, is logged once (a WARNING, as TF
Serving logs it), not at every poll; again when that changes (it appears, or it goes away).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from serving.config import ManagerConfig
from serving.model_config import ModelConfig, ModelConfigError
from serving.model_versions import (
    ModelNotFound,
    ModelUnavailable,
    ModelVersions,
    VersionStatus,
    list_versions,
    load_and_warm_up,
    scan_versions,
)
from serving.predictor import Predictor

log = logging.getLogger(__name__)
_MISSING, _UNREADABLE, _EMPTY, _FOUND = "missing", "unreadable", "empty", "found"


def _base_path_state(path: Path) -> str:
    try:
        if not path.is_dir():
            return _MISSING
        return _FOUND if list_versions(path) else _EMPTY
    except OSError:
        return _UNREADABLE


class ModelManager:
    """The registry of served models; `await poll()` once, or `start()` to follow disk."""

    def __init__(
        self,
        config: ManagerConfig,
        executor: Executor,
        on_version: Callable[[str, int], None] = lambda model, version: None,
    ) -> None:
        """`on_version(model, newest loaded version)` runs when a model's versions change
        (version 0: the model was removed). A bad config file raises ModelConfigError."""
        self.config = config
        self._executor = executor
        self._on_version = on_version
        self._models: dict[str, ModelVersions] = {}  # replaced, never mutated
        self._moving: dict[str, ModelVersions] = {}  # new base paths loading their first version
        self._configs: tuple[ModelConfig, ...] = ()
        self._read_at = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._base_paths: dict[Path, str] = {}  # what was last logged of each base path
        self._apply(config.models())

    @property
    def names(self) -> list[str]:
        return sorted(self._models)

    @property
    def current(self) -> Predictor | None:
        """The newest version of the default model (the one-model shortcut's serving version)."""
        models = self._models
        versions = models.get(self.config.model_name) or next(iter(models.values()), None)
        return None if versions is None else versions.newest()

    def versions(self, name: str = "") -> ModelVersions:
        """The model `name`; "" = the only model, or `model_name` when several are served."""
        models = self._models
        versions = models.get(name or self.config.model_name)
        if not name and len(models) == 1:
            versions = next(iter(models.values()))
        if versions is None:
            asked = f"unknown model `{name}`" if name else "the request names no model"
            raise ModelNotFound(f"{asked}; this server serves {sorted(models)}")
        return versions

    def get(self, name: str = "", version: int = 0, label: str = "") -> Predictor:
        """The predictor of `name` at `version` or `label` (0 and "": the newest loaded).
        Raises ModelNotFound (unknown model, version or label) or ModelUnavailable."""
        return self.versions(name).get(version, label)

    def status(self, name: str = "", version: int = 0, label: str = "") -> list[VersionStatus]:
        return self.versions(name).status(version, label)

    def ready(self) -> bool:
        """Every configured model has a version loaded."""
        return all(m.newest() is not None for m in self._models.values())

    def _apply(self, configs: tuple[ModelConfig, ...]) -> None:
        """Makes `configs` the served models (see the module docstring)."""
        old, models = self._models, dict(self._models)
        for config in configs:
            current = old.get(config.name)
            if current is None:
                models[config.name] = ModelVersions(config, self.config.predictor, self._executor)
                log.info(
                    "model %s added (%s, %s)",
                    config.name,
                    config.base_path,
                    config.policy.describe(),
                )
            elif current.config.base_path != config.base_path:
                self._moving[config.name] = ModelVersions(
                    config, self.config.predictor, self._executor
                )
            else:
                current.config = config  # policy and labels: the next poll follows them
        removed = sorted(set(old) - {c.name for c in configs})
        for name in removed:
            del models[name]
            self._moving.pop(name, None)
        self._models = models  # removed models take no new request from here on
        self._configs = configs
        for name in removed:
            old[name].unload()
            log.info("model %s removed", name)
            self._on_version(name, 0)
        if removed:
            gc.collect()

    def reload_config(self) -> bool:
        """Re-reads the config file; True when it changed. A bad file keeps the old config."""
        self._read_at = time.monotonic()
        try:
            configs = self.config.models()
        except ModelConfigError as e:
            log.error("keeping the current model config: %s", e)
            return False
        if configs == self._configs:
            return False
        self._apply(configs)
        return True

    async def poll(self) -> bool:
        """Re-reads the config file when due, then lets every model follow its base path;
        True when any model's loaded versions changed."""
        wait = self.config.config_poll_seconds
        due = wait > 0 and time.monotonic() - self._read_at >= wait
        if self.config.config_file is not None and due:
            self.reload_config()
        changed = False
        self._log_base_paths([*self._models.values(), *self._moving.values()])
        for name, moving in list(self._moving.items()):
            await moving.poll()
            if moving.newest() is not None and name in self._models:
                previous = self._models[name]
                self._models = {**self._models, name: moving}
                del self._moving[name]
                previous.unload()
                changed = True
                self._notify(moving)
        for versions in list(self._models.values()):
            if await versions.poll():
                changed = True
                self._notify(versions)
        if changed:
            gc.collect()  # replaced versions' graphs go as soon as their last request is done
        return changed

    def _log_base_paths(self, models: list[ModelVersions]) -> None:
        """Logs a base path that is missing or holds no version, once per change."""
        seen = {}
        for versions in models:
            path = versions.config.base_path
            state = _base_path_state(path)
            seen[path] = state
            if self._base_paths.get(path, _FOUND) == state:
                continue
            if state == _MISSING:
                log.warning(
                    "model %s: base path %s does not exist; no versions found (looking "
                    "again every %gs)",
                    versions.name,
                    path,
                    self.config.poll_seconds,
                )
            elif state == _UNREADABLE:
                log.warning(
                    "model %s: base path %s cannot be listed (permissions?); no versions found",
                    versions.name,
                    path,
                )
            elif state == _EMPTY:
                log.warning(
                    "model %s: no versions found under base path %s; a version is a "
                    "folder named by a number, e.g. %s",
                    versions.name,
                    path,
                    path / "1",
                )
            else:
                log.info("model %s: versions found under base path %s", versions.name, path)
        self._base_paths = seen

    def _notify(self, versions: ModelVersions) -> None:
        newest = versions.newest()
        if newest is not None:
            self._on_version(versions.name, newest.version)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._follow())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:  # never let the watcher die
                log.exception("polling the models failed")
            await asyncio.sleep(self.config.poll_seconds)


__all__ = [
    "ManagerConfig",
    "ModelManager",
    "ModelNotFound",
    "ModelUnavailable",
    "ModelVersions",
    "VersionStatus",
    "list_versions",
    "load_and_warm_up",
    "scan_versions",
]
