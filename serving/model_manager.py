"""Versions under `--model-base-path`: load the newest (or a pinned one), warm it up, swap it in.

    <base>/1700000000/   saved_model.pb, variables/, assets/spec.json,
                         assets.extra/tf_serving_warmup_requests (optional)

Every `poll_seconds` the manager lists the version folders: ASCII digits without leading zeros,
within int64 (`artifacts.parse_version`). Any other folder (`²`, `99999999999999999999`, `v2`) is
logged once and ignored; hidden staging folders (`.123.partial`) silently. When the wanted
version is not the one serving, it loads it in a thread, replays its warm-up requests (or a
synthesized request when the export has none), and only then swaps it in with one assignment:
requests in flight finish on the version they started with, new ones see the new version, none
fail. A version that fails to load, warm up or agree with its own spec is logged and skipped
(retried only if its folder changes); the old version keeps serving. The replaced version is
released once its last request is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from serving.predictor import Predictor, PredictorConfig
from serving.tensors import batch_from_request, warmup_requests
from unified_embedding.artifacts import MAX_VERSION, parse_version

log = logging.getLogger(__name__)


class ModelNotFound(LookupError):
    """An unknown model name or version (NOT_FOUND)."""


class ModelUnavailable(RuntimeError):
    """No version is loaded yet (UNAVAILABLE)."""


@dataclass(frozen=True)
class ManagerConfig:
    """Args:
    base_path: the export base; versions are its numeric sub-folders.
    model_name: the name clients address the model by (TF Serving's default: `default`).
    version: pin this version instead of following the newest.
    poll_seconds: how often to look for new versions.
    predictor: request limits of every loaded version.
    """

    base_path: Path
    model_name: str = "default"
    version: int | None = None
    poll_seconds: float = 1.0
    predictor: PredictorConfig = field(default_factory=PredictorConfig)


def scan_versions(base_path: Path) -> tuple[list[int], list[str]]:
    """The versions under `base_path` (oldest first) and the other folders' names, except
    hidden ones (staging folders of an export in progress)."""
    if not base_path.is_dir():
        return [], []
    versions, others = [], []
    for path in base_path.iterdir():
        if path.name.startswith(".") or not path.is_dir():
            continue
        version = parse_version(path.name)
        if version is None:
            others.append(path.name)
        else:
            versions.append(version)
    return sorted(versions), sorted(others)


def list_versions(base_path: Path) -> list[int]:
    """The version folders of `base_path`, oldest first."""
    return scan_versions(base_path)[0]


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


class ModelManager:
    """Holds the serving Predictor; `await poll()` once, or `start()` to follow the base path."""

    def __init__(
        self,
        config: ManagerConfig,
        executor: Executor,
        on_version: Callable[[int], None] = lambda version: None,
    ) -> None:
        self.config = config
        self._executor = executor
        self._on_version = on_version
        self._current: Predictor | None = None
        self._rejected: dict[int, float] = {}  # version -> folder stamp when it failed
        self._ignored: set[str] = set()  # folders that are not versions, logged once each
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> Predictor | None:
        return self._current

    def get(self, name: str = "", version: int = 0) -> Predictor:
        """The serving predictor for `name` ("" = ours) and `version` (0 = whichever serves)."""
        if name and name != self.config.model_name:
            raise ModelNotFound(f"unknown model `{name}`; this server serves "
                                f"`{self.config.model_name}`")  # fmt: skip
        predictor = self._current
        if predictor is None:
            raise ModelUnavailable(f"model `{self.config.model_name}` has no version loaded yet")
        if version and version != predictor.version:
            raise ModelNotFound(f"model `{self.config.model_name}` version {version} is not "
                                f"loaded; serving version {predictor.version}")  # fmt: skip
        return predictor

    def wanted(self) -> int | None:
        versions, others = scan_versions(self.config.base_path)
        for name in sorted(set(others) - self._ignored):
            self._ignored.add(name)
            log.warning("ignoring folder %r under %s: a version folder is ASCII digits without "
                        "leading zeros, at most %d", name, self.config.base_path,
                        MAX_VERSION)  # fmt: skip
        if self.config.version is not None:
            return self.config.version if self.config.version in versions else None
        fresh = [v for v in versions if not self._is_rejected(v)]
        return max(fresh) if fresh else None

    def _is_rejected(self, version: int) -> bool:
        stamp = self._rejected.get(version)
        if stamp is None:
            return False
        try:
            return _stamp(self.config.base_path / str(version)) == stamp
        except OSError:
            return True

    async def poll(self) -> bool:
        """Loads and swaps in the wanted version if it changed; True when a swap happened."""
        version = self.wanted()
        current = self._current
        if version is None or (current is not None and current.version == version):
            return False
        if self._is_rejected(version):
            return False
        path = self.config.base_path / str(version)
        loop = asyncio.get_running_loop()
        try:
            predictor, replayed = await loop.run_in_executor(
                self._executor, load_and_warm_up, path, self.config.predictor
            )
        except Exception as e:  # any failure keeps the old version serving
            with contextlib.suppress(OSError):
                self._rejected[version] = _stamp(path)
            log.error("model %s version %d rejected: %s: %s", self.config.model_name, version,
                      type(e).__name__, str(e)[:500])  # fmt: skip
            return False
        self._current = predictor  # the swap: one reference assignment
        log.info(
            "model %s version %d serving (spec %s, %d warm-up requests replayed%s)",
            self.config.model_name, version, predictor.fingerprint, replayed,
            f", replacing version {current.version}" if current else "",
        )  # fmt: skip
        self._on_version(version)
        del current
        gc.collect()  # the old version's graphs go as soon as its last request is done
        return True

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
                log.exception("polling %s failed", self.config.base_path)
            await asyncio.sleep(self.config.poll_seconds)
