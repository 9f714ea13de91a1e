"""`ue serve` and `ue predict`. Their flags are the fields of the serving configs
(`serving.config`, `WorkersConfig`, `ClientConfig`), parsed and checked, and the files they name
looked at, before gRPC or TensorFlow is imported: a wrong flag or a missing model is refused at
once, and `--workers N` forks its workers from a parent that never imports either.

    ue serve --model-base-path export/ [--port 8500] [--rest-api-port 8501] [--workers 4]
    ue predict --target 127.0.0.1:8500 --input rows.tsv [--columns] [--context C1=user-7]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serving.batching_parameters import read_batching_parameters
from serving.config import (
    BatchingConfig,
    ManagerConfig,
    PredictorConfig,
    ServerConfig,
    TlsConfig,
)
from serving.cpu_affinity import cpu_for, pin_request_path, usable_cpus
from serving.logs import configure_logging
from serving.workers import Turn, WorkersConfig, reserve_port, run_workers
from unified_embedding.runtime.flags import add_flags, command_parser, from_flags, option

if TYPE_CHECKING:
    from unified_embedding.contract.raw_values import Field

_SOURCE = ("base_path", "config_file")  # one or the other: where the models are


@dataclass(frozen=True)
class ServeCommand:
    """What `ue serve` decides beyond one server's config."""

    workers: int = option(
        0,
        "server processes sharing --port (SO_REUSEPORT), each loading the models itself; 0: "
        "one per core; 1: this process alone; with 2 or more, the parent replaces a worker "
        "that dies",
    )
    batching_parameters_file: Path | None = option(
        None,
        "TF Serving's BatchingParameters text file; its values override --max-batch-size, "
        "--max-wait-us, --batch-threads and --max-queued-requests",
        names=("--batching_parameters_file",),
    )


def build_serve_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "ue serve",
        "gRPC server (our Ranking service and TF Serving's PredictionService and "
        "ModelService) over the newest version under --model-base-path, or the models of "
        "--model-config-file, with hot reload; TF Serving's REST API with --rest-api-port. "
        "TF Serving's flag spellings (--model_base_path, ...) are accepted too.",
    )
    models = parser.add_argument_group("models")
    add_flags(models.add_mutually_exclusive_group(required=True), ManagerConfig, only=_SOURCE)
    add_flags(models, ManagerConfig, exclude=_SOURCE)
    add_flags(models, PredictorConfig)
    add_flags(parser.add_argument_group("server"), ServerConfig)
    add_flags(
        parser.add_argument_group("tls"), TlsConfig, defaults={"certificate": None, "key": None}
    )
    batching = parser.add_argument_group("batching")
    add_flags(batching, BatchingConfig)
    add_flags(batching, ServeCommand, only=("batching_parameters_file",))
    processes = parser.add_argument_group("processes")
    add_flags(processes, ServeCommand, only=("workers",))
    add_flags(processes, WorkersConfig)
    return parser


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The flags as one server's config: a `--batching-parameters-file`'s values win over the
    batching flags; TLS takes both files or neither."""
    command = from_flags(ServeCommand, args)
    changes = {}
    if command.batching_parameters_file is not None:
        changes = read_batching_parameters(command.batching_parameters_file)
    tls = None
    if (args.certificate is None) != (args.key is None):
        raise ValueError("give both `--tls-certificate` and `--tls-key`, or neither")
    if args.certificate is not None:
        tls = from_flags(TlsConfig, args)
    models = from_flags(ManagerConfig, args, predictor=from_flags(PredictorConfig, args))
    batching = from_flags(BatchingConfig, args, **changes)
    return from_flags(ServerConfig, args, models=models, batching=batching, tls=tls)


def check_files(config: ServerConfig) -> None:
    """Refuses a base path, a config file or a certificate that does not exist before anything
    starts. (A base path may still hold no version yet: the server waits for one, as TF Serving
    does; a config file is read by each server as it starts, and re-read as it changes.)"""
    base, config_file = config.models.base_path, config.models.config_file
    if base is not None and not base.is_dir():
        raise FileNotFoundError(
            f"`--model-base-path {base}` is not a folder: give the --export-base of `ue export` "
            "or one of its version folders"
        )
    if config_file is not None and not config_file.is_file():
        raise FileNotFoundError(f"`--model-config-file {config_file}` is not a file")
    if config.tls is not None:
        files = {"--tls-certificate": config.tls.certificate, "--tls-key": config.tls.key}
        for flag, path in files.items():
            if not path.is_file():
                raise FileNotFoundError(f"`{flag} {path}` is not a file")


def serve_main(argv: Sequence[str]) -> int:
    """`ue serve`: one server in this process (`--workers 1`), or a parent that forks and
    supervises N servers sharing the port."""
    args = build_serve_parser().parse_args(argv)
    configure_logging()  # JSON lines, the batching file's notes included
    config = server_config(args)
    check_files(config)
    workers = from_flags(ServeCommand, args).workers or os.cpu_count() or 1
    if workers == 1:
        if args.pin_workers and (cpus := usable_cpus()):
            pin_request_path(cpu_for(0, cpus))
        return _serve(config)
    supervision = from_flags(
        WorkersConfig,
        args,
        workers=workers,
        host=config.host,
        port=config.port,
        metrics_port=config.metrics_port,
        stop_seconds=config.grace_seconds + 20,
    )
    # Each worker imports gRPC and TensorFlow after the fork; the parent serves the metrics.
    worker = dataclasses.replace(
        config,
        metrics_port=None,
        reuse_port=True,
        batching=config.batching.for_workers(workers),  # the workers share the CPUs
    )
    with contextlib.ExitStack() as stack:
        if config.rest_api_port is not None:  # the workers share the REST port as the gRPC one
            rest = stack.enter_context(reserve_port(config.host, config.rest_api_port))
            worker = dataclasses.replace(worker, rest_api_port=rest)

        def serve_worker(turn: Turn, port: int) -> int:
            index = -1 if turn.index is None else turn.index  # -1: a spare, until its turn
            return _serve(dataclasses.replace(worker, port=port, worker=index), turn)

        return run_workers(supervision, serve_worker)


def _serve(config: ServerConfig, turn: Turn | None = None) -> int:
    """One server until SIGTERM/SIGINT; a spare listens once `turn` names the worker it
    replaces."""
    from unified_embedding.runtime.startup import import_tensorflow_quietly

    import_tensorflow_quietly()  # no "no GPU here" lines, in each worker too
    from serving.server import serve

    serve(config, None if turn is None else turn.wait)
    return 0


@dataclass(frozen=True)
class PredictCommand:
    """What `ue predict` scores, and how it sends the rows."""

    target: str = option(help="host:port of a ue server")
    input: Path = option(help="raw rows (CSV/TSV, .gz ok)")
    schema: str | None = option(
        None,
        "criteo | avazu | frappe | FILE.json; None: the format of the served model's own data "
        "(the spec in its GetModelInfo)",
    )
    tls_root_certificate: Path | None = option(None, "PEM roots to verify the server (TLS)")
    columns: bool = option(
        False, "send ranking requests: the rows as candidates, one column per field"
    )
    context: tuple[str, ...] = option(
        (),
        "a field shared by every row, sent once per request instead of the file's column "
        "(repeatable; implies --columns)",
        metavar="NAME=VALUE",
        repeatable=True,
    )


def build_predict_parser() -> argparse.ArgumentParser:
    from serving.client import ClientConfig  # gRPC: never imported by `ue serve`'s parent

    parser = command_parser("ue predict", "Score the rows of a file through a ue server.")
    add_flags(parser, PredictCommand)
    add_flags(parser, ClientConfig)
    return parser


def predict_main(argv: Sequence[str]) -> int:
    """`ue predict`: one JSON line with the probabilities; a refused call is one line and
    status 1."""
    import grpc

    from serving.client import ClientConfig, RankingClient, columns_from_file, rows_from_file

    args = build_predict_parser().parse_args(argv)
    command = from_flags(PredictCommand, args)
    if not command.input.is_file():
        raise FileNotFoundError(f"`--input {command.input}` is not a file")
    root = command.tls_root_certificate
    config = from_flags(ClientConfig, args, root_certificate=root.read_bytes() if root else None)
    with RankingClient(command.target, config) as client:
        try:
            info = client.model_info()
            if command.columns or command.context:
                context = _context(command.context, info.fields)
                columns = columns_from_file(command.input, command.schema, info)
                candidates = {k: v for k, v in columns.items() if k not in context}
                probabilities = client.predict_columns(candidates, context)
            else:
                probabilities = client.predict(rows_from_file(command.input, command.schema, info))
        except grpc.RpcError as e:  # the server's answer names the problem
            print(f"ue predict: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    answer = {"model": info.model_spec.name, "version": info.model_spec.version}
    print(json.dumps({**answer, "rows": len(probabilities), "probabilities": probabilities}))
    return 0


def _context(pairs: Sequence[str], fields: Sequence[Field]) -> dict[str, str | float]:
    """`--context NAME=VALUE` pairs as the fields' raw values ("" = missing)."""
    import numpy as np

    from unified_embedding.contract.raw_values import raw_type

    by_name = {f.name: f for f in fields}
    out: dict[str, str | float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in by_name:
            raise ValueError(
                f"`--context` takes NAME=VALUE with NAME one of the model's fields "
                f"{sorted(by_name)}. Received: `{pair}`"
            )
        out[name] = raw_type(by_name[name]).from_text(np.array([value])).item()
    return out
