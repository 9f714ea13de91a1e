"""Start-up lines of TensorFlow (on a machine without a GPU) and of Apache Beam, held back.

Importing TensorFlow and probing for GPUs writes, from C++ and whatever TF_CPP_MIN_LOG_LEVEL says
(absl logs everything to stderr before `absl::InitializeLog`):

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
    E0000 ... cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: ...

On a CPU-only machine these only say "no GPU here", with an ERROR that alarms a newcomer. This
module imports TensorFlow and lists the GPUs with file descriptor 2 pointed at a temporary file,
then replays every held line except those four when no GPU was found. With a GPU, or for any
other line, nothing is hidden; nothing is hidden after start-up either. Listing physical devices
does not initialize the runtime, so logical devices can still be configured afterwards.

Apache Beam logs `apitools not found, and bigquery client libraries are not available` when the
optional BigQuery clients are not installed (our jobs read and write files only), and a note on
memory use per RunInference model load without torch; `import_beam_quietly` drops both.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

# Lines that only say "this machine has no GPU" (or are absl's note about its own start-up).
CPU_ONLY_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|\] oneDNN custom operations are on"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers"
    r"|\] failed call to cuInit: "
)


def import_tensorflow_quietly() -> list[str]:
    """Imports TensorFlow (once per process) and returns the names of the GPUs it sees."""
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices("GPU")]
    sys.stderr.flush()
    saved = os.dup(2)
    gpus: list[str] = []
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            import tensorflow as tf

            gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
            for line in lines:
                if gpus or not CPU_ONLY_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()
    return gpus


# Apache Beam's notes that say nothing about the job: the optional BigQuery clients are missing
# (logged at import), and RunInference cannot read its memory use (logged per model load: Beam
# imports `resource` with torch in one try, so without torch `resource` counts as missing).
BEAM_NOTE = "apitools not found, and bigquery client libraries are not available"
BEAM_NOTES = (BEAM_NOTE, "Resource module is not available for current platform")


class _DropBeamNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(note in message for note in BEAM_NOTES)


def import_beam_quietly() -> None:
    """Imports Apache Beam and keeps its notes in `BEAM_NOTES` off the root logger (where Beam
    logs them) for the rest of the process; every other record passes."""
    root = logging.getLogger()
    if not any(isinstance(f, _DropBeamNotes) for f in root.filters):
        root.addFilter(_DropBeamNotes())
    import apache_beam  # noqa: F401
