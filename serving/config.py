"""What `ue serve` is asked to do, as frozen configs: each field with help is one flag of
`ue serve` (`runtime.flags`), its default written here once. No TensorFlow or gRPC here: the
flags are parsed, and a wrong one refused, before either starts (and before `--workers` forks).

    ServerConfig      the gRPC (and REST) server: ports, limits, stopping
      ManagerConfig   which models, from where, how often to look for new versions
        PredictorConfig   request limits of every loaded version
      BatchingConfig  how concurrent requests merge into model calls
      TlsConfig       certificate and key, when serving TLS

TF Serving's flag spellings (`--model_base_path`, `--rest_api_port`, ...) are accepted too, and
its `--batching_parameters_file` maps onto `BatchingConfig` (`serving.batching_parameters`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from serving.cpu_affinity import usable_cpus
from serving.model_config import ModelConfig, VersionPolicy, load_model_config
from unified_embedding.runtime.flags import option

DEFAULT_HOST = "127.0.0.1"  # loopback: serving the network is a choice (`--host 0.0.0.0`)
DEFAULT_PORT = 8500  # TF Serving's gRPC port


@dataclass(frozen=True)
class PredictorConfig:
    """Args:
    max_rows: the most rows one request may carry (more is an invalid request).
    """

    max_rows: int = option(4096, "rows per request; more is INVALID_ARGUMENT")

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ValueError(f"`max_rows` should be >= 1. Received: `max_rows={self.max_rows}`")


@dataclass(frozen=True)
class BatchingConfig:
    """Args:
    enabled: merge concurrent requests; off runs each request as its own model call.
    max_batch_size: rows per model call (a larger request runs alone).
    max_wait_us: how long a batch waits for more requests once the model is free; 0 takes
        what is queued (batches still grow under load: they fill while the model runs).
    max_queued_requests: queue bound; beyond it requests get RESOURCE_EXHAUSTED.
    batch_threads: model calls in flight at once, each on its own thread (one per core with
        single-threaded TensorFlow ops, see `runtime.threads.set_op_threads`). None: this
        process's share of the CPUs, so that every worker's model calls together take each
        core once (`for_workers`); more threads than cores measured slower under load.
    """

    enabled: bool = option(True, "merge concurrent requests into model calls", flag="--batching")
    max_batch_size: int = option(512, "rows per model call")
    max_wait_us: int = option(0, "wait this long for more rows to batch")
    max_queued_requests: int = option(1024, "requests waiting beyond it: RESOURCE_EXHAUSTED")
    batch_threads: int | None = option(
        None, "model calls at once, one thread each (None: the CPUs over --workers)"
    )

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_queued_requests", "batch_threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"`{name}` should be >= 1. Received: `{name}={value}`")
        if self.max_wait_us < 0:
            raise ValueError(
                f"`max_wait_us` should be >= 0. Received: `max_wait_us={self.max_wait_us}`"
            )

    def for_workers(self, workers: int) -> BatchingConfig:
        """This config with `batch_threads` decided: as given, or one of `workers` server
        processes' share of the CPUs this process may use (at least 1)."""
        if self.batch_threads is not None:
            return self
        cpus = len(usable_cpus()) or os.cpu_count() or 1
        return replace(self, batch_threads=max(1, cpus // workers))

    @property
    def threads(self) -> int:
        """Model-call threads: `batch_threads`, or when not given one per CPU (one server)."""
        threads = self.for_workers(1).batch_threads
        assert threads is not None
        return threads


@dataclass(frozen=True)
class ManagerConfig:
    """Args:
    base_path: the export base of the one-model shortcut; versions are its numeric sub-folders.
    model_name: the name clients address that model by (TF Serving's default: `default`).
    version: pin this version instead of following the newest.
    poll_seconds: how often to look for new versions.
    predictor: request limits of every loaded version.
    config_file: a ModelServerConfig in text format naming several models (instead of
        `base_path`, `model_name` and `version`).
    config_poll_seconds: how often to re-read `config_file` (0: read once, at start).
    """

    base_path: Path | None = option(
        None,
        "the export base (--export-base) of one model, or one version folder; None: "
        "--model-config-file instead",
        flag="--model-base-path",
        names=("--model_base_path",),
    )
    model_name: str = option("default", "the name requests ask for", names=("--model_name",))
    version: int | None = option(None, "pin a version; None: follow the newest")
    poll_seconds: float = option(1.0, "how often to look for new versions")
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    config_file: Path | None = option(
        None,
        "TF Serving's ModelServerConfig in text format: several models, version policies and "
        "labels; None: --model-base-path instead",
        flag="--model-config-file",
        names=("--model_config_file",),
    )
    config_poll_seconds: float = option(
        60.0,
        "how often to re-read --model-config-file (0: read it once)",
        flag="--model-config-file-poll-wait-seconds",
        names=("--model_config_file_poll_wait_seconds",),
    )

    def __post_init__(self) -> None:
        if (self.base_path is None) == (self.config_file is None):
            raise ValueError(
                "give either `base_path` or `config_file`. Received: "
                f"`base_path={self.base_path}`, `config_file={self.config_file}`"
            )
        if self.config_poll_seconds < 0:
            raise ValueError(
                "`config_poll_seconds` should be >= 0. Received: "
                f"`config_poll_seconds={self.config_poll_seconds}`"
            )

    def models(self) -> tuple[ModelConfig, ...]:
        """The configured models: the file's, or the one-model shortcut (latest 1 or pinned)."""
        if self.config_file is not None:
            return load_model_config(self.config_file)
        assert self.base_path is not None
        pinned = None if self.version is None else (self.version,)
        return (ModelConfig(self.model_name, self.base_path, VersionPolicy(versions=pinned)),)


@dataclass(frozen=True)
class TlsConfig:
    certificate: Path = option(help="PEM certificate chain (TLS)", flag="--tls-certificate")
    key: Path = option(help="PEM private key (TLS)", flag="--tls-key")


@dataclass(frozen=True)
class ServerConfig:
    """Args:
    models: where the versions are and how to follow them.
    port: gRPC port (0 picks a free one).
    host: interface to bind; loopback by default, `0.0.0.0` to serve the network.
    metrics_port: Prometheus `/metrics` over HTTP on `host` (None: off, 0: a free port).
    rest_api_port: TF Serving's REST API on `host` (None: off, 0: a free port), its metrics at
        `/monitoring/prometheus/metrics`.
    rest_api_timeout_in_ms: a REST request not answered within it gets 504 (TF Serving's
        flag of that name).
    batching: how concurrent requests merge into model calls, on `batching.batch_threads`
        threads.
    tls: serve TLS with this certificate and key (plaintext when None).
    max_message_bytes: largest request or response.
    max_concurrent_rpcs: RPCs in progress at once; beyond it RESOURCE_EXHAUSTED.
    grace_seconds: how long stopping waits for RPCs in flight.
    op_threads: TensorFlow intra- and inter-op threads, set by `serve()` before TensorFlow
        starts (0: TensorFlow's default, one per core).
    reuse_port: bind with SO_REUSEPORT, so several server processes share `port` and the
        kernel spreads connections over them (`serving.workers`), and only once the models
        serve; off, a port in use fails.
    worker: this process's index among the workers (ModelInfo.worker, logs); -1 for a spare
        until `start(turn)` learns the index it takes over.
    """

    models: ManagerConfig
    port: int = option(DEFAULT_PORT, "gRPC port (0: a free one)")
    host: str = option(DEFAULT_HOST, "the interface to bind; 0.0.0.0 serves the network")
    metrics_port: int | None = option(None, "Prometheus /metrics over HTTP (0: a free port)")
    rest_api_port: int | None = option(
        None,
        "TF Serving's REST API and /monitoring/prometheus/metrics (0: a free port)",
        names=("--rest_api_port",),
    )
    rest_api_timeout_in_ms: int = option(
        30_000, "a REST request unanswered this long gets 504", names=("--rest_api_timeout_in_ms",)
    )
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    tls: TlsConfig | None = None
    max_message_bytes: int = option(16 * 1024 * 1024, "largest gRPC message or REST body")
    max_concurrent_rpcs: int = 2048
    grace_seconds: float = option(
        10.0,
        "on SIGTERM/SIGINT, how long requests in flight may take to finish",
        names=("--grace-period-seconds",),
    )
    op_threads: int = option(1, "TensorFlow intra/inter-op threads (0: TensorFlow's default)")
    reuse_port: bool = False
    worker: int = 0

    def __post_init__(self) -> None:
        if self.op_threads < 0:
            raise ValueError(
                f"`op_threads` should be >= 0. Received: `op_threads={self.op_threads}`"
            )

    @property
    def rest_api_timeout_seconds(self) -> float:
        return self.rest_api_timeout_in_ms / 1000


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "BatchingConfig",
    "ManagerConfig",
    "PredictorConfig",
    "ServerConfig",
    "TlsConfig",
]
