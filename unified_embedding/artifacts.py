"""The names of every file and folder the jobs write and read, in one place (no TensorFlow here:
the server and the Beam launchers import it).

    <preprocess --output>/        manifest.json, spec.json, stats.json, dead_letters-*.jsonl,
                                  train-*.tfrecord.gz, eval-*.tfrecord.gz
    <train --model-dir>/          run.json, embedding.json, weights/best, logs/
    <export-base>/<version>/      saved_model.pb, variables/, assets/spec.json,
                                  assets.extra/tf_serving_warmup_requests
    <score --output>/             manifest.json, stats.json, scores-*, dead_letters-*.jsonl

A version folder is a number within int64 written in ASCII digits without leading zeros;
anything else under an export base (`v2`, `²`, `.123.partial` staging folders) is not a version.
"""

from __future__ import annotations

from pathlib import Path

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
WEIGHTS = "weights/best"
VOCABULARY_FILE = "vocabulary.npz"  # runs written before EMBEDDING_FILE existed
LOGS_DIR = "logs"

# An exported version (`ue export`).
SAVED_MODEL_FILE = "saved_model.pb"
SPEC_ASSET = f"assets/{SPEC_FILE}"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"  # TF Serving's warm-up location
MAX_VERSION = 2**63 - 1  # versions travel as int64 (our ModelSpec, TF Serving's Int64Value)


def record_prefix(split: str) -> str:
    """The shard prefix of a split's records: `<split>-SSSSS-of-NNNNN.tfrecord.gz`."""
    return split


def record_glob(split: str) -> str:
    """The glob of a split's record shards, relative to the pipeline's output."""
    return f"{record_prefix(split)}-*{RECORD_SUFFIX}"


def parse_version(name: str) -> int | None:
    """The version a folder name stands for: ASCII digits without leading zeros, within int64;
    None for anything else (`str.isdigit` also accepts `²`, which `int` then refuses)."""
    if not name.isascii() or not name.isdigit() or (len(name) > 1 and name[0] == "0"):
        return None
    version = int(name)
    return version if version <= MAX_VERSION else None


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
    found = [str(p) for p in root.glob("*") if (p / SAVED_MODEL_FILE).is_file()]
    newest = newest_version(found)
    if newest is None:
        raise FileNotFoundError(f"no SavedModel at {root} nor in numeric version folders under it")
    return Path(newest)
