"""TensorFlow Serving's `--batching_parameters_file` (a `BatchingParameters` text proto) as
changes to our `BatchingConfig`:

    max_batch_size { value: 128 }          -> max_batch_size       rows per model call
    batch_timeout_micros { value: 1000 }   -> max_wait_us          wait for more rows
    num_batch_threads { value: 2 }         -> batch_threads        model calls at once
    max_enqueued_batches { value: 100 }    -> max_queued_requests  our queue counts requests

This table is the one place TF Serving's batching names meet ours.

Any other field the file sets (`allowed_batch_sizes`, `pad_variable_length_inputs`, ...) is
logged once as ignored, by name. Nothing here imports TensorFlow or gRPC: `ue serve --workers N`
reads the file in the parent, before the workers are forked.
"""

from __future__ import annotations

import logging
from pathlib import Path

from google.protobuf import text_format

from protos.batching_parameters_pb2 import BatchingParameters

log = logging.getLogger(__name__)

# TF Serving's field -> BatchingConfig's field, and the least value each takes.
FIELDS: dict[str, tuple[str, int]] = {
    "max_batch_size": ("max_batch_size", 1),
    "batch_timeout_micros": ("max_wait_us", 0),
    "num_batch_threads": ("batch_threads", 1),
    "max_enqueued_batches": ("max_queued_requests", 1),
}


def read_batching_parameters(path: str | Path) -> dict[str, int]:
    """The BatchingConfig fields the file at `path` sets; ValueError names the file and the
    problem (unreadable, not BatchingParameters text, a value out of range)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"batching parameters file {path}: {e}") from None
    parameters = BatchingParameters()
    try:
        text_format.Parse(text, parameters)
    except text_format.ParseError as e:
        raise ValueError(f"batching parameters file {path}: {e}") from None
    changes = {}
    for field, value in parameters.ListFields():
        if field.name not in FIELDS:
            log.warning(
                "batching parameters file %s: `%s` is not supported; ignored", path, field.name
            )
            continue
        name, least = FIELDS[field.name]
        if value.value < least:
            raise ValueError(
                f"batching parameters file {path}: `{field.name}` should be >= {least}. "
                f"Received: `{field.name}={value.value}`"
            )
        changes[name] = int(value.value)
    return changes


__all__ = ["FIELDS", "read_batching_parameters"]
