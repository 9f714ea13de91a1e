"""An export base and its versions: the one rule for a version folder, and which folder a model
path names. No TensorFlow here: the server's parent process and the Beam launchers import it.

    <export-base>/<version>/   a version: its name is a number within int64 in ASCII digits
                               without leading zeros, and it holds saved_model.pb
    <export-base>/.<name>      hidden: a version being written (`ue export` and `ue push` stage
                               it there and rename it to its number); never a version

`ue export` and `ue push` write into a `staging_folder` and `publish` it as the next version,
the server loads `scan_versions`, and every command that takes
a model (`ue evaluate`, `ue score`, `ue serve`, the notebooks) accepts an export base (its newest
version) or a version folder (`locate`). Anything else under a base (`v2`, `²`, `007`,
`9223372036854775808`) is not a version.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from unified_embedding.contract.artifacts import SAVED_MODEL_FILE, STAGING_PREFIX

MAX_VERSION = 2**63 - 1  # versions travel as int64 (our ModelSpec, TF Serving's Int64Value)


class NoVersionLeft(ValueError):
    """An export base whose largest version is already `MAX_VERSION`."""


class VersionFolders(NamedTuple):
    versions: list[int]  # oldest first
    others: list[str]  # folders that are neither versions nor hidden (staging) folders


def parse_version(name: str) -> int | None:
    """The version a folder name stands for: ASCII digits without leading zeros, within int64;
    None for anything else (`str.isdigit` also accepts `²`, which `int` then refuses)."""
    if not name.isascii() or not name.isdigit() or (len(name) > 1 and name[0] == "0"):
        return None
    version = int(name)
    return version if version <= MAX_VERSION else None


def is_staging(name: str) -> bool:
    """Hidden names: an export's staging folder (no digit-only name starts with a dot)."""
    return name.startswith(STAGING_PREFIX)


def scan_versions(base: Path) -> VersionFolders:
    """The version folders under `base` and its other folders' names, hidden ones left out;
    empty when `base` is not a folder."""
    if not base.is_dir():
        return VersionFolders([], [])
    versions, others = [], []
    for path in base.iterdir():
        if is_staging(path.name) or not path.is_dir():
            continue
        version = parse_version(path.name)
        if version is None:
            others.append(path.name)
        else:
            versions.append(version)
    return VersionFolders(sorted(versions), sorted(others))


def next_version(base: Path, now: float | None = None) -> int:
    """The version a new export under `base` takes: the unix time in seconds (`now`), or one
    more than the largest version named by any entry of `base` (a file of that name would block
    the folder too), whichever is larger. Raises `NoVersionLeft` when that exceeds int64."""
    names = [p.name for p in base.iterdir()] if base.is_dir() else []
    taken = [v for v in map(parse_version, names) if v is not None]
    newest = max(taken, default=-1)
    version = max(int(time.time() if now is None else now), newest + 1)
    if version > MAX_VERSION:
        raise NoVersionLeft(
            f"no version is left under `--export-base {base}`: `{base / str(newest)}` is the "
            f"largest version int64 holds ({MAX_VERSION}); move it away to export a new one"
        )
    return version


def staging_folder(base: Path, writer: str) -> Path:
    """A fresh hidden folder of `base` for a version `writer` (`export`, `push`) is writing: on
    the base's file system, so that renaming it publishes the version at once."""
    return base / f"{STAGING_PREFIX}{writer}-{uuid.uuid4().hex}.partial"


def publish(staging: Path, base: Path, attempts: int = 5) -> Path:
    """Renames a complete `staging` folder to the next version of `base` and returns it. The
    version is chosen only now: another writer may have taken one meanwhile (a rename onto an
    existing empty folder would replace it, hence the check)."""
    for _ in range(attempts):
        target = base / str(next_version(base))
        if not target.exists():
            staging.rename(target)
            return target
    raise FileExistsError(f"`{base}`: versions were taken while writing `{staging.name}`")


def version_name(path: str) -> str:
    """The last component of a local or URL-style path (`gs://b/m/17/` -> `17`)."""
    return path.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]


def newest_version(paths: Iterable[str]) -> str | None:
    """The path among `paths` whose last component is the largest version, None if none is."""
    numbered = [(v, p) for p in paths if (v := parse_version(version_name(p))) is not None]
    return max(numbered)[1] if numbered else None


@dataclass(frozen=True)
class ModelFolder:
    """The folder of one exported model: `path` holds saved_model.pb; `version` is its name as a
    version, None when the name is not one (a copy named `latest/` is still a model)."""

    path: str
    version: int | None

    @property
    def name(self) -> str:
        return version_name(self.path)


class Files(NamedTuple):
    """The two questions `locate` asks of a file system (local, gs://, ...): whether a folder
    holds a SavedModel, and the folders one level below a folder that hold one."""

    holds_model: Callable[[str], bool]
    model_folders: Callable[[str], Iterable[str]]


def _local_model_folders(path: str) -> list[str]:
    root = Path(path)
    if not root.is_dir():
        return []
    return [str(p) for p in root.iterdir() if (p / SAVED_MODEL_FILE).is_file()]


LOCAL = Files(lambda path: (Path(path) / SAVED_MODEL_FILE).is_file(), _local_model_folders)


def locate(path: str | Path, files: Files = LOCAL) -> ModelFolder:
    """The model a path names: `path` itself when it holds a SavedModel, else its newest version
    folder holding one (an export base). Raises FileNotFoundError naming `path`."""
    text = str(path).rstrip("/") or "/"
    if not files.holds_model(text):
        newest = newest_version(p.rstrip("/") for p in files.model_folders(text))
        if newest is None:
            raise FileNotFoundError(
                f"no SavedModel at `--model {text}` nor in version folders under it (an export "
                f"base holds <version>/saved_model.pb)"
            )
        text = newest
    return ModelFolder(text, parse_version(version_name(text)))


def split_version(path: Path) -> tuple[Path, int | None]:
    """(export base, version) for a model path: a version folder holding a SavedModel stands for
    its base with that one version; any other path is a base (None)."""
    version = parse_version(path.name)
    if version is not None and (path / SAVED_MODEL_FILE).is_file():
        return path.parent, version
    return path, None
