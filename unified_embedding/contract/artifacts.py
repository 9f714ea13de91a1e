"""The names of every file and folder the jobs write and read, in one place (no TensorFlow here:
the server and the Beam launchers import it).

    <preprocess --output>/        manifest.json, spec.json, stats.json, dead_letters-*.jsonl,
                                  train-*.tfrecord.gz, eval-*.tfrecord.gz
    <train --model-dir>/          run.json, embedding.json, weights/best, logs/, backup/,
                                  train_summary.json (written last: the run is finished)
    <export-base>/<version>/      saved_model.pb, variables/, assets/spec.json,
                                  assets.extra/tf_serving_warmup_requests
                                  blessing.json (`ue push`'s verdict on the version)
    <export-base>/.<name>         hidden: a version being written (`ue export` stages it there
                                  and renames it to its version); never a version
    <score --output>/             manifest.json, stats.json, scores-*, dead_letters-*.jsonl

Which folders under an export base are versions is `exported.versions`' rule.
"""

from __future__ import annotations

# The pipelines' outputs (`ue preprocess`, `ue score`).
MANIFEST_FILE = "manifest.json"  # the files a job wrote: all that --overwrite may remove
SPEC_FILE = "spec.json"
STATS_FILE = "stats.json"
RECORD_SUFFIX = ".tfrecord.gz"
DEAD_LETTERS_PREFIX = "dead_letters"
DEAD_LETTERS_SUFFIX = ".jsonl"
DEAD_LETTERS_GLOB = f"{DEAD_LETTERS_PREFIX}-*{DEAD_LETTERS_SUFFIX}"
SPLITS = ("train", "eval")  # the record splits: `<split>-*.tfrecord.gz`
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
RUN_OUTPUTS = (
    RUN_FILE,
    EMBEDDING_FILE,
    WEIGHTS_DIR,
    VOCABULARY_FILE,
    LOGS_DIR,
    BACKUP_DIR,
    SUMMARY_FILE,
)

# An exported version (`ue export`).
SAVED_MODEL_FILE = "saved_model.pb"
SPEC_ASSET = f"assets/{SPEC_FILE}"
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"  # TF Serving's warm-up location
STAGING_PREFIX = "."  # hidden entries of an export base: staging folders, never versions
BLESSING_FILE = "blessing.json"  # `ue push`'s verdict, in the candidate's version folder


def record_prefix(split: str) -> str:
    """The shard prefix of a split's records: `<split>-SSSSS-of-NNNNN.tfrecord.gz`."""
    return split


def record_glob(split: str) -> str:
    """The glob of a split's record shards, relative to the pipeline's output."""
    return f"{record_prefix(split)}-*{RECORD_SUFFIX}"
