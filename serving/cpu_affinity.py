"""Pinning a serving worker's request path to one CPU: `ue serve --pin-workers`.

Worker i answers requests on the i-th CPU the server may use (`os.sched_getaffinity`, round
robin when there are more workers than CPUs): its event loop, and gRPC's threads, which that
thread starts. The model calls (the batching threads) and TensorFlow's own threads stay free to
run on any of the CPUs, so a worker still uses more than one core under load. A pinned request
path is never moved between cores mid-request, which makes batch-1 requests faster; pinning
whole workers did as much for them but cost ranking throughput (benchmarks/RESULTS.md,
"Serving"). A pinned thread cannot leave a core that something else keeps busy: pin where the
server has the host to itself, one worker per core (as nginx's `worker_cpu_affinity`). A spare
is pinned when it takes a worker's place.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

_free: set[int] | None = None  # the CPUs before the request path was pinned


def usable_cpus() -> tuple[int, ...]:
    """The CPUs this process may run on (those before its request path was pinned), in order;
    () where the platform does not say."""
    if not hasattr(os, "sched_getaffinity"):
        return ()
    return tuple(sorted(os.sched_getaffinity(0) if _free is None else _free))


def cpu_for(index: int, cpus: Sequence[int]) -> int:
    """Worker `index`'s CPU: round robin over `cpus` (not empty)."""
    return cpus[index % len(cpus)]


def pin_request_path(cpu: int) -> None:
    """Pins the calling thread (the event loop's, before it starts gRPC) to `cpu`; threads it
    starts later inherit that, except those that call `unpin_thread` as they start."""
    global _free
    if _free is None:
        _free = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})


def unpin_thread() -> None:
    """Lets the calling thread run on every CPU the process had before `pin_request_path`
    (a model-call thread's initializer); nothing when nothing was pinned."""
    if _free is not None:
        os.sched_setaffinity(0, _free)


__all__ = ["cpu_for", "pin_request_path", "unpin_thread", "usable_cpus"]
