"""The rows `ue train` evaluates on, and how many positives they hold.

They are the eval split plus, with `--eval-share S`, the rows of the train split whose
fingerprint falls in the lowest fraction S: those rows are never trained on. By default
(`auto_eval_share`) S is just enough for the evaluated rows to hold about AUTO_EVAL_POSITIVES
positives, at most AUTO_EVAL_SHARE_CAP, and 0 when the eval split holds them already. A row's
fingerprint is a function of its feature values alone (not of its position), so the same rows
are held out whatever the read order, on every worker, epoch and resume; identical rows fall
on the same side.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from unified_embedding.contract.artifacts import STATS_FILE
from unified_embedding.contract.spec import FeatureSpec
from unified_embedding.rows.records import LABEL
from unified_embedding.training.data import training_dataset

MIN_EVAL_POSITIVES = 100  # fewer: validation AUC swings by ~0.03 between evaluations
# `--eval-share` by default: evaluate on about this many positives (the AUC's standard error is
# then ~0.02 at AUC 0.7), holding out at most this share of the train split for it.
AUTO_EVAL_POSITIVES = 200
AUTO_EVAL_SHARE_CAP = 0.2
_COUNT_BATCH = 65_536


@dataclass(frozen=True)
class SplitCounts:
    rows: int
    positives: float

    @property
    def label_rate(self) -> float:
        return self.positives / self.rows if self.rows else 0.0


def split_counts(spec: FeatureSpec, data_dir: str | Path, split: str) -> SplitCounts:
    """Rows and positives of a split: from the pipeline's stats.json, else (stats.json written
    before `positives_by_split`) by one pass over the split's records."""
    stats = Path(data_dir) / STATS_FILE
    if stats.is_file():
        document = json.loads(stats.read_text())
        rows, positives = document.get("rows_by_split", {}), document.get("positives_by_split", {})
        if split in rows and split in positives:
            return SplitCounts(int(rows[split]), float(positives[split]))
    data = training_dataset(spec, data_dir, split, _COUNT_BATCH, shuffle=False)
    rows_total, positives_total = 0, 0.0
    for batch in data:
        rows_total += int(tf.shape(batch[LABEL])[0])
        positives_total += float(tf.reduce_sum(batch[LABEL]))
    return SplitCounts(rows_total, positives_total)


def held_out(block: Mapping[str, tf.Tensor], share: float | None) -> tf.Tensor:
    """(rows,) bool: the rows of a parsed block (`records.parse_block`) held out of training.

    A row is held out when the first 32 bits of the FarmHash fingerprint of its feature
    values, read as a fraction of 2^32, are below `share` (None: a `TrainJob`'s share before
    `resolve_eval_share`, holds none out).
    """
    rows = tf.shape(block[LABEL])[0]
    columns = []
    for name in sorted(block):
        if name == LABEL:
            continue
        value = block[name]
        if isinstance(value, tf.RaggedTensor):  # multi-valued: the sum of its values' ids
            value = tf.reduce_sum(value, axis=1)
        if value.dtype.is_floating:
            value = tf.bitcast(tf.cast(value, tf.float32), tf.int32)
        columns.append(tf.reshape(tf.cast(value, tf.int64), (rows, -1)))
    fingerprint = tf.fingerprint(tf.concat(columns, axis=1))  # (rows, 8) uint8
    high = tf.bitcast(fingerprint[:, :4], tf.uint32)
    return tf.cast(high, tf.float64) < (share or 0.0) * 2.0**32


def kept_for_training(
    share: float | None,
) -> Callable[[Mapping[str, tf.Tensor]], tf.Tensor] | None:
    """The `keep` of the train split's dataset: every row not `held_out`; None for share 0."""
    if not share:
        return None
    return lambda block: tf.logical_not(held_out(block, share))


def auto_eval_share(train: SplitCounts, evaluation: SplitCounts) -> float:
    """The share of the train split to hold out so that the evaluated rows hold about
    AUTO_EVAL_POSITIVES positives (`evaluated_positives`): 0 when the eval split holds them,
    else rounded up to 1e-4 and at most AUTO_EVAL_SHARE_CAP."""
    missing = AUTO_EVAL_POSITIVES - evaluation.positives
    if missing <= 0 or train.positives <= 0:
        return 0.0
    return min(AUTO_EVAL_SHARE_CAP, math.ceil(missing / train.positives * 1e4) / 1e4)


def resolve_eval_share(
    share: float | None, train: SplitCounts, evaluation: SplitCounts
) -> tuple[float, str]:
    """(the share held out, how it was chosen): `share` as given, or by `auto_eval_share`
    when None."""
    if share is not None:
        return share, "given"
    chosen = auto_eval_share(train, evaluation)
    if not chosen:
        return 0.0, f"auto: the eval split holds >= {AUTO_EVAL_POSITIVES} positives"
    capped = " (capped)" if chosen == AUTO_EVAL_SHARE_CAP else ""
    return chosen, (
        f"auto: the eval split holds {evaluation.positives:.0f} positives; {chosen:g} of the "
        f"train rows{capped} held out to evaluate on about {AUTO_EVAL_POSITIVES}"
    )


def evaluated_positives(train: SplitCounts, evaluation: SplitCounts, share: float) -> float:
    """Positives of the evaluated rows: the eval split's, plus about `share` of the train
    split's (exact in expectation: the fingerprints are uniform)."""
    return evaluation.positives + share * train.positives


def warn_if_few_positives(positives: float, share: float) -> str | None:
    """Logs (and returns) a warning when the evaluated rows hold < MIN_EVAL_POSITIVES."""
    if positives >= MIN_EVAL_POSITIVES:
        return None
    flag = "`--eval-share 0.2` (holds 20% of the train split's rows out of training and "
    flag += "evaluates on them too)"
    if share:
        flag = f"a larger `--eval-share` than {share:g}"
    message = (
        f"the evaluated rows hold {'about ' if share else ''}{positives:.0f} positives "
        f"(fewer than {MIN_EVAL_POSITIVES}): validation AUC is noisy and early stopping may "
        f"pick a lucky evaluation. Evaluate on more rows: `ue train` with {flag}, or rerun "
        "`ue preprocess` with a larger `--eval-fraction`"
    )
    logging.getLogger(__name__).warning("ue train: warning: %s", message)
    return message
