"""The names of every file and folder the jobs write and read, in one place (no TensorFlow here:
the server and the Beam launchers import it).

    <preprocess --output>/        manifest.json, spec.json, stats.json, dead_letters-*.jsonl,
                                  train-*.tfrecord.gz, eval-*.tfrecord.gz
    <train --model-dir>/          run.json, embedding.json, weights/best, logs/, backup/,
                                  train_summary.json (written last: the run is finished)
    <export-base>/<version>/      saved_model.pb, variables/, assets/spec.json,
                                  assets.extra/tf_serving_warmup_requests
    <export-base>/.<name>         hidden: a version being written (`ue export` stages it there
                                  and renames it to its version); never a version
    <score --output>/             manifest.json, stats.json, scores-*, dead_letters-*.jsonl

The version rule has one owner, this module: `ue export` (`next_version`), the server
(`scan_versions`), `resolve_saved_model` and `ue score` (`newest_version`) all ask it. A version
folder is a number within int64 written in ASCII digits without leading zeros; anything else under
an export base (`v2`, `²`, `007`, `9223372036854775808`) is not a version.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

# The pipelines' outputs (`ue preprocess`, `ue score`).
MANIFEST_FILE = "manifest.json"  # the files a job wrote: all that --overwrite may remove
SPEC_FILE = "spec.json"
STATS_FILE = "stats.json"
RECORD_SUFFIX = ".tfrecord.gz"
DEAD_LETTERS_PREFIX = "dead_letters"
DEAD_LETTERS_SUFFIX = ".jsonl"
DEAD_LETTERS_GLOB = f"{DEAD_LETTERS_PREFIX}-*{DEAD_LETTERS_SUFFIX}"
SCORES_PREFIX = "scores"
LENGTHS_SUFFIX = ".lengths"  # a multi-valued field's values per row, beside its flat values

# A training run (`ue train --model-dir`).
RUN_FILE = "run.json"
EMBEDDING_FILE = "embedding.json"
WEIGHTS_DIR = "weights"
WEIGHTS = f"{WEIGHTS_DIR}/best"
VOCABULARY_FILE = "vocabulary.npz"  # runs written before EMBEDDING_FILE existed
LOGS_DIR = "logs"
BACKUP_DIR = "backup"  # checkpoints every --checkpoint-every steps: a stopped run resumes there
# Written last, once the best weights are saved: a run directory holding it is finished, and
# `ue train` refuses to train into it again without `--overwrite`.
SUMMARY_FILE = "train_summary.json"
# Everything a run writes: all that `ue train --overwrite` removes from its model directory.
RUN_OUTPUTS = (RUN_FILE, EMBEDDING_FILE, WEIGHTS_DIR, VOCABULARY_FILE, LOGS_DIR, BACKUP_DIR,
               SUMMARY_FILE)  # fmt: skip

# An exported version (`ue export`).
SAVED_MODEL_FILE = "saved_model.pb"
SPEC_ASSET = f"assets/{SPEC_FILE}"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"  # TF Serving's warm-up location
MAX_VERSION = 2**63 - 1  # versions travel as int64 (our ModelSpec, TF Serving's Int64Value)
STAGING_PREFIX = "."  # hidden entries of an export base: staging folders, never versions


def record_prefix(split: str) -> str:
    """The shard prefix of a split's records: `<split>-SSSSS-of-NNNNN.tfrecord.gz`."""
    return split


def record_glob(split: str) -> str:
    """The glob of a split's record shards, relative to the pipeline's output."""
    return f"{record_prefix(split)}-*{RECORD_SUFFIX}"


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


def version_name(path: str) -> str:
    """The last component of a local or URL-style path (`gs://b/m/17/` -> `17`)."""
    return path.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]


def newest_version(paths: list[str]) -> str | None:
    """The path among `paths` whose last component is the largest version, None if none is."""
    numbered = [(v, p) for p in paths if (v := parse_version(version_name(p))) is not None]
    return max(numbered)[1] if numbered else None


def resolve_saved_model(path: str | Path) -> Path:
    """`path` itself if it holds a SavedModel, else its newest version folder holding one."""
    root = Path(path)
    if (root / SAVED_MODEL_FILE).is_file():
        return root
    found = [root / str(v) for v in scan_versions(root).versions]
    found = [p for p in found if (p / SAVED_MODEL_FILE).is_file()]
    if not found:
        raise FileNotFoundError(f"no SavedModel at {root} nor in numeric version folders under it")
    return found[-1]
