"""The versions of one model under its base path, loaded side by side as its policy says.

    <base>/1700000000/   saved_model.pb, variables/, assets/spec.json,
                         assets.extra/tf_serving_warmup_requests (optional)

`await poll()` lists the version folders by the rule `ue export` follows too
(`exported.versions`: ASCII digits without leading zeros, within int64). Any other folder
(`²`, `99999999999999999999`, `v2`) is logged once and ignored; hidden staging folders
(`.export-*.partial`) silently. A base path that is itself a version folder (`export/17`) serves
that one version. Each version the policy wants and
that is not loaded yet is loaded in the loader thread, its warm-up requests replayed (or a
synthesized request when the export has none), and only then published with one assignment of a
new `{version: Predictor}` map: requests in flight finish on the version they started with, new
ones see the new map, none fail. A version that fails to load, warm up or agree with its own spec
is logged and skipped (retried only if its folder changes) and the policy falls back to the
versions that loaded, so the old one keeps serving. Versions the policy no longer wants leave the
map after the wanted ones are in, and are released once their last request is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from serving.model_config import ModelConfig
from serving.predictor import Predictor, PredictorConfig
from serving.tensors import batch_from_request, warmup_requests
from unified_embedding.exported.versions import MAX_VERSION, scan_versions, split_version

log = logging.getLogger(__name__)


class ModelNotFound(LookupError):
    """An unknown model name, version or label (NOT_FOUND)."""


class ModelUnavailable(RuntimeError):
    """A known model with no version loaded yet (UNAVAILABLE)."""


@dataclass(frozen=True)
class VersionStatus:
    """A version's state, named as TF Serving's ModelVersionStatus.State names it: START,
    LOADING, AVAILABLE, UNLOADING or END (unloaded, or failed: then `error_message` says why)."""

    version: int
    state: str
    error_message: str = ""


def list_versions(base_path: Path) -> list[int]:
    """The version folders of `base_path`, oldest first; [v] for a version folder `v`."""
    base, version = split_version(base_path)
    return [version] if version is not None else scan_versions(base).versions


def _stamp(folder: Path) -> float:
    """Changes when the folder's files change, so a rejected version is retried after a fix."""
    return max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)


def load_and_warm_up(path: Path, config: PredictorConfig) -> tuple[Predictor, int]:
    """Loads a version and runs its warm-up requests; returns it and the requests replayed."""
    predictor = Predictor.load(path, config)
    replayed = 0
    for request in warmup_requests(path):
        predictor.predict(batch_from_request(predictor, request))
        replayed += 1
    if replayed == 0:
        batch = predictor.pack_rows([predictor.missing_row()])
        for _ in range(3):
            predictor.predict(batch)
    predictor.explain(predictor.pack_rows([predictor.missing_row()]), top_k=1)
    return predictor, replayed


class ModelVersions:
    """One model's loaded versions; `get` picks one by number or label, `poll` follows disk."""

    def __init__(self, config: ModelConfig, predictor: PredictorConfig, executor: Executor) -> None:
        self.config = config
        self._predictor = predictor
        self._executor = executor
        self._loaded: dict[int, Predictor] = {}  # replaced, never mutated: readers need no lock
        self._states: dict[int, VersionStatus] = {}
        self._rejected: dict[int, float] = {}  # version -> folder stamp when it failed
        self._ignored: set[str] = set()  # folders that are not versions, logged once each

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def _base(self) -> Path:
        """The export base the versions are read from (a version folder's parent)."""
        return split_version(self.config.base_path)[0]

    @property
    def rejected(self) -> set[int]:
        """Versions that failed to load and are skipped until their folder changes."""
        return set(self._rejected)

    def newest(self) -> Predictor | None:
        loaded = self._loaded
        return loaded[max(loaded)] if loaded else None

    def get(self, version: int = 0, label: str = "") -> Predictor:
        """`version` (0 = the newest loaded) or the version `label` points to."""
        loaded = self._loaded
        if label:
            if label not in self.config.labels:
                raise ModelNotFound(
                    f"model `{self.name}` has no version label `{label}`; its "
                    f"labels are {sorted(self.config.labels)}"
                )
            version = self.config.labels[label]
        if not loaded:
            raise ModelUnavailable(f"model `{self.name}` has no version loaded yet")
        if not version:
            return loaded[max(loaded)]
        if version not in loaded:
            via = f" (label `{label}`)" if label else ""
            raise ModelNotFound(
                f"model `{self.name}` version {version}{via} is not loaded; "
                f"loaded versions: {sorted(loaded)}"
            )
        return loaded[version]

    def status(self, version: int = 0, label: str = "") -> list[VersionStatus]:
        """Every version this manager has seen (newest first), or the one asked for."""
        if label:
            if label not in self.config.labels:
                raise ModelNotFound(f"model `{self.name}` has no version label `{label}`")
            version = self.config.labels[label]
        states = self._states
        if version:
            if version not in states:
                raise ModelNotFound(f"model `{self.name}` version {version} is unknown")
            return [states[version]]
        return [states[v] for v in sorted(states, reverse=True)]

    def _set_state(self, version: int, state: str, error: str = "") -> None:
        self._states = {**self._states, version: VersionStatus(version, state, error)}

    def _available(self) -> list[int]:
        base, only = split_version(self.config.base_path)
        if only is not None:  # a version folder: that version alone
            return [] if self._is_rejected(only) else [only]
        versions, others = scan_versions(base)
        for name in sorted(set(others) - self._ignored):
            self._ignored.add(name)
            log.warning(
                "ignoring folder %r under %s: a version folder is ASCII digits without "
                "leading zeros, at most %d",
                name,
                base,
                MAX_VERSION,
            )
        return [v for v in versions if not self._is_rejected(v)]

    def _is_rejected(self, version: int) -> bool:
        stamp = self._rejected.get(version)
        if stamp is None:
            return False
        try:
            return _stamp(self._base / str(version)) == stamp
        except OSError:
            return True

    async def _load(self, version: int) -> bool:
        path = self._base / str(version)
        self._set_state(version, "LOADING")
        loop = asyncio.get_running_loop()
        try:
            predictor, replayed = await loop.run_in_executor(
                self._executor, load_and_warm_up, path, self._predictor
            )
        except Exception as e:  # any failure keeps the other versions serving
            with contextlib.suppress(OSError):
                self._rejected[version] = _stamp(path)
            message = f"{type(e).__name__}: {str(e)[:500]}"
            self._set_state(version, "END", message)
            log.error("model %s version %d rejected: %s", self.name, version, message)
            return False
        self._loaded = {**self._loaded, version: predictor}  # the swap: one assignment
        self._set_state(version, "AVAILABLE")
        log.info(
            "model %s version %d serving (spec %s, %d warm-up requests replayed)",
            self.name,
            version,
            predictor.fingerprint,
            replayed,
        )
        return True

    async def poll(self) -> bool:
        """Loads the versions the policy wants, then drops the others; True when the set of
        loaded versions changed."""
        changed, tried = False, set[int]()
        while True:  # a rejected version makes the policy fall back to an older one
            wanted = self.config.policy.select(self._available())
            new = sorted(wanted - set(self._loaded) - tried)
            if not new:
                break
            tried.add(new[-1])
            changed |= await self._load(new[-1])
        stale = set(self._loaded) - wanted
        if stale and wanted & set(self._loaded):  # never drop the last versions for nothing
            self.unload(stale)
            changed = True
        return changed

    def unload(self, versions: set[int] | None = None) -> None:
        """Stops serving `versions` (all when None); each is released after its last request."""
        versions = set(self._loaded) if versions is None else versions
        self._loaded = {v: p for v, p in self._loaded.items() if v not in versions}
        for version in sorted(versions):
            self._set_state(version, "END")
            log.info("model %s version %d unloaded", self.name, version)


__all__ = [
    "ModelNotFound",
    "ModelUnavailable",
    "ModelVersions",
    "VersionStatus",
    "list_versions",
    "load_and_warm_up",
    "scan_versions",
]
