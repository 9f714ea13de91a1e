"""The `ue` command line: one console script, one subcommand per job."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unified_embedding.contract.raw_values import Field
    from unified_embedding.synthetic import SyntheticConfig


def _generate(args: argparse.Namespace) -> int:
    from unified_embedding.synthetic import write_tsv

    report = write_tsv(args.out, args.rows, _synthetic_config(args))
    print(json.dumps(report.to_dict()))
    return 0


def _synthetic_config(args: argparse.Namespace) -> SyntheticConfig:
    from unified_embedding.synthetic import SyntheticConfig

    return SyntheticConfig(
        seed=args.seed, weighted_top_k=args.weighted_top_k, signal_scale=args.signal_scale
    )


def _add_synthetic_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed of the planted model")
    parser.add_argument(
        "--weighted-top-k",
        type=int,
        default=200,
        help="values per field that carry weight in the planted model (fewer = easier to learn)",
    )
    parser.add_argument(
        "--signal-scale", type=float, default=1.0, help="multiplies the planted weights"
    )


def _demo(args: argparse.Namespace) -> int:
    from unified_embedding.runtime.startup import import_beam_quietly

    import_beam_quietly()  # before demo.py imports the preprocessing job
    from ue.demo import DemoConfig, run_demo

    summary = run_demo(
        DemoConfig(
            rows=args.rows,
            synthetic=_synthetic_config(args),
            budget=args.budget,
            epochs=args.epochs,
            compare=not args.no_compare,
            seeds=tuple(args.seeds),
        ),
        workdir=args.workdir,
    )
    print(json.dumps(summary))
    return 0


def _train(args: argparse.Namespace) -> int:
    from unified_embedding.models.autoint import DEFAULT_TRAIN_MODEL
    from unified_embedding.training.experiment import TrainConfig
    from unified_embedding.training.loop import TrainJob, train

    units = tuple(args.dnn_units)  # none: plain AutoInt, without the DNN's dropout
    model = dataclasses.replace(
        DEFAULT_TRAIN_MODEL, dnn_units=units, dropout=DEFAULT_TRAIN_MODEL.dropout if units else 0.0
    )

    job = TrainJob(
        data_dir=args.data,
        model_dir=args.model_dir,
        layout=args.embedding,
        budget=_train_budget(args),
        probes=args.probes,
        steps=args.steps,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        patience=args.patience,
        plateau_decay=args.plateau_decay,
        eval_share=args.eval_share,
        batch_size=args.batch_size,
        strategy=args.strategy,
        cpu_devices=args.cpu_devices,
        precision=args.precision,
        overwrite=args.overwrite,
        model=model,
        optimizer=TrainConfig(seed=args.seed),
    )
    print(json.dumps(train(job)))
    return 0


def _train_budget(args: argparse.Namespace) -> str | None:
    """`--budget`, or the deprecated `--budget-mb` (decimal MB) as the same text."""
    if args.budget_mb is None:
        return str(args.budget) if args.budget else None
    if args.budget:
        raise ValueError(f"give `--budget` or the deprecated `--budget-mb`, not both. Received: "
                         f"`--budget {args.budget} --budget-mb {args.budget_mb:g}`")  # fmt: skip
    budget = f"{args.budget_mb:g}MB"
    print(f"ue train: warning: `--budget-mb` is deprecated; use `--budget {budget}` (units: KB, "
          f"MB, GB, KiB, MiB, GiB)", file=sys.stderr)  # fmt: skip
    _budget(budget)
    return budget


def _checked(parse: Callable[[str], object], text: str) -> str:
    """`text` if `parse` takes it; its ValueError as argparse's message otherwise."""
    try:
        parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _budget(text: str) -> str:
    """A budget with units (`200KB`, `4MB`, `1MiB`), checked, kept as text."""
    from unified_embedding.budget.plan import parse_budget

    return _checked(parse_budget, text)


def _probes(text: str) -> str:
    """`auto` or a probe count, checked, kept as text."""
    from unified_embedding.budget.probes import parse_probes

    return _checked(parse_probes, text)


def _export(args: argparse.Namespace) -> int:
    from unified_embedding.exported.writer import export
    from unified_embedding.training.loop import load_trained

    model, run = load_trained(args.model_dir)
    print(export(model, run.feature_spec(), args.export_base))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from unified_embedding.evaluation.evaluate import evaluate
    from unified_embedding.metrics.exact import calibration_warning

    report = evaluate(args.model, args.input, args.schema)  # schema None: the model's
    print(json.dumps(report))
    warning = calibration_warning(report["calibration"])
    if warning:
        print(f"ue evaluate: warning: {warning}", file=sys.stderr)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from serving.batching_parameters import read_batching_parameters
    from serving.logs import configure_logging

    configure_logging()
    args.batching_changes = {}
    if args.batching_parameters_file:  # read once, before any fork: a bad file fails here
        args.batching_changes = read_batching_parameters(args.batching_parameters_file)
    workers = args.workers or os.cpu_count() or 1
    if workers == 1:
        return _serve_worker(args, 0, args.port, reuse_port=False)
    # The parent imports neither gRPC nor TensorFlow: each worker does, after the fork.
    from serving.workers import WorkersConfig, reserve_port, run_workers

    config = WorkersConfig(workers, host=args.host, port=args.port,
                           metrics_port=args.metrics_port,
                           stop_seconds=args.grace_period_seconds + 20,
                           spares=args.spare_workers,
                           restart_backoff_seconds=args.restart_backoff_seconds,
                           max_restart_backoff_seconds=args.max_restart_backoff_seconds,
                           max_crashes=args.max_worker_crashes,
                           crash_window_seconds=args.worker_crash_window_seconds)  # fmt: skip
    with contextlib.ExitStack() as stack:
        if args.rest_api_port is not None:  # the workers share the REST port as the gRPC one
            args.rest_api_port = stack.enter_context(reserve_port(args.host, args.rest_api_port))
        return run_workers(config, lambda turn, port: _serve_worker(
            args, -1 if turn.index is None else turn.index, port, True, turn.wait))  # fmt: skip


def _serve_worker(
    args: argparse.Namespace,
    worker: int,
    port: int,
    reuse_port: bool,
    turn: Callable[[], Awaitable[int]] | None = None,
) -> int:
    """One server process until SIGTERM/SIGINT; under `--workers N` the parent serves metrics,
    and a spare (`worker` -1) listens once `turn()` names the worker it replaces."""
    from pathlib import Path

    from serving.batching import BatchingConfig
    from serving.model_manager import ManagerConfig
    from serving.predictor import PredictorConfig
    from serving.server import ServerConfig, TlsConfig, serve

    _start_tensorflow()
    if (args.tls_certificate is None) != (args.tls_key is None):
        raise ValueError("give both `--tls-certificate` and `--tls-key`, or neither")
    tls = TlsConfig(Path(args.tls_certificate), Path(args.tls_key)) if args.tls_key else None
    models = ManagerConfig(
        Path(args.model_base_path) if args.model_base_path else None,
        model_name=args.model_name,
        version=args.version,
        poll_seconds=args.poll_seconds,
        predictor=PredictorConfig(max_rows=args.max_rows),
        config_file=Path(args.model_config_file) if args.model_config_file else None,
        config_poll_seconds=args.model_config_file_poll_wait_seconds,
    )
    flags = {
        "max_batch_size": args.max_batch_size,
        "max_wait_us": args.max_wait_us,
        "max_queued_requests": args.max_queued_requests,
        "max_concurrent_batches": args.model_threads,
    }
    flags.update(getattr(args, "batching_changes", {}))  # --batching-parameters-file wins
    batching = BatchingConfig(enabled=not args.no_batching, **flags)
    metrics_port = None if reuse_port else args.metrics_port
    serve(ServerConfig(models, port=port, host=args.host, metrics_port=metrics_port,
                       rest_api_port=args.rest_api_port,
                       rest_api_timeout_seconds=args.rest_api_timeout_in_ms / 1000,
                       batching=batching, tls=tls, grace_seconds=args.grace_period_seconds,
                       model_threads=batching.max_concurrent_batches,
                       op_threads=args.op_threads or None,
                       max_message_bytes=args.max_message_mb * 1024 * 1024,
                       reuse_port=reuse_port, worker=worker), turn)  # fmt: skip
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
            raise ValueError(f"`--context` takes NAME=VALUE with NAME one of the model's fields "
                             f"{sorted(by_name)}. Received: `{pair}`")  # fmt: skip
        out[name] = raw_type(by_name[name]).from_text(np.array([value])).item()
    return out


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    import grpc

    from serving.client import ClientConfig, RankingClient, columns_from_file, rows_from_file

    certificate = (
        Path(args.tls_root_certificate).read_bytes() if args.tls_root_certificate else None
    )
    config = ClientConfig(timeout_seconds=args.timeout, retries=args.retries,
                          model_name=args.model_name, root_certificate=certificate,
                          max_rows_per_request=args.batch_size)  # fmt: skip
    with RankingClient(args.target, config) as client:
        try:
            info = client.model_info()
            if args.columns or args.context:
                context = _context(args.context, info.fields)
                columns = columns_from_file(args.input, args.schema, info)
                candidates = {k: v for k, v in columns.items() if k not in context}
                probabilities = client.predict_columns(candidates, context)
            else:
                probabilities = client.predict(rows_from_file(args.input, args.schema, info))
        except grpc.RpcError as e:  # the server's answer names the problem
            print(f"ue predict: {e.code().name}: {e.details()}", file=sys.stderr)
            return 1
    print(json.dumps({"model": info.model_spec.name, "version": info.model_spec.version,
                      "rows": len(probabilities), "probabilities": probabilities}))  # fmt: skip
    return 0


def _quiet_beam_typehints() -> None:
    """Beam logs one INFO line per string type hint it cannot resolve (dozens per job)."""
    import logging

    logging.getLogger("apache_beam.typehints.native_type_compatibility").setLevel(logging.WARNING)


def _preprocess(argv: Sequence[str]) -> int:
    import logging

    from pipelines.preprocess import parse_args, run, summary

    logging.getLogger().setLevel(logging.INFO)
    _quiet_beam_typehints()
    stats = run(argv)
    print(summary(stats, parse_args(argv)[0].output), file=sys.stderr)  # for a person
    print(json.dumps({k: stats[k] for k in ("rows_read", "rows_valid", "rows_dead",
                                            "dead_by_reason", "rows_by_split")}))  # fmt: skip
    return 0


def _score(argv: Sequence[str]) -> int:
    import logging

    from pipelines.score import run

    logging.getLogger().setLevel(logging.INFO)
    _quiet_beam_typehints()
    stats = run(argv)
    print(json.dumps({"model_version": stats["model"]["version"],
                      **{k: stats[k] for k in ("rows_read", "rows_scored", "rows_dead",
                                               "dead_by_reason", "metrics")}}))  # fmt: skip
    return 0


# Commands whose process imports TensorFlow (`serve` does in each worker, `predict` never).
TENSORFLOW_COMMANDS = frozenset({"train", "export", "evaluate", "demo"})


def _start_tensorflow() -> None:
    """TensorFlow without its "no GPU here" start-up lines on a CPU-only machine."""
    from unified_embedding.runtime.startup import import_tensorflow_quietly

    import_tensorflow_quietly()


# Beam jobs own their flags (and Beam's): `ue <job> ...` hands the rest of the line to them.
BEAM_JOBS = {"preprocess": _preprocess, "score": _score}


def build_parser() -> argparse.ArgumentParser:
    from unified_embedding.budget.layouts import LAYOUTS  # no TensorFlow: `ue --help` stays fast
    from unified_embedding.runtime.helpformat import DefaultsHelpFormatter

    parser = argparse.ArgumentParser(prog="ue", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help, description=help, formatter_class=DefaultsHelpFormatter
        )

    generate = command(
        "generate", "write Criteo-format rows with planted interactions (TSV, .gz ok)"
    )
    generate.add_argument("--rows", type=int, required=True, help="rows to write")
    generate.add_argument("--out", required=True, help="output path; .gz compresses")
    _add_synthetic_flags(generate)
    generate.set_defaults(run=_generate)

    commands.add_parser(
        "preprocess",
        add_help=False,
        help="Beam pipeline: raw logs -> train/eval records, spec.json, stats.json "
        "(see `ue preprocess --help`)",
    )

    commands.add_parser(
        "score",
        add_help=False,
        help="Beam job: P(click) per raw row from an exported model, score shards, stats.json "
        "(see `ue score --help`)",
    )

    train = command("train", "train AutoInt on the pipeline's records")
    train.add_argument("--data", required=True, help="the output directory of ue preprocess")
    train.add_argument("--model-dir", required=True, help="checkpoints, logs, weights (resumes)")
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="start a finished run in --model-dir afresh, removing only what a run writes "
        "(without it a finished run is refused; an unfinished one resumes)",
    )
    train.add_argument(
        "--embedding",
        default="unified",
        choices=LAYOUTS,
        help="embedding layout; collisionless: a row per value seen in the train split "
        "(ignores --budget)",
    )
    train.add_argument(
        "--budget",
        type=_budget,
        default=None,
        help="embedding parameter budget with units (200KB, 4MB, 1MiB); None: sized from the "
        "data (stats.json's data_budget_bytes) when ue preprocess had no --budget, else the "
        "table of the records' spec.json",
    )
    train.add_argument(
        "--budget-mb", type=float, default=None, help="deprecated: use --budget (e.g. 4MB)"
    )
    train.add_argument(
        "--probes",
        type=_probes,
        default=None,
        help="lookups per hashed field, at most the records' (`ue preprocess --probes`); auto: "
        "1 up to 100 distinct values, +1 per factor of 10 beyond, at most 4 (multi-size); "
        "None: the records'",
    )
    train.add_argument("--steps", type=int, default=10_000, help="training steps (batches)")
    train.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="steps between evaluations; None: one pass over the train split, at most 1000",
    )
    train.add_argument(
        "--checkpoint-every", type=int, default=200, help="steps between backups (resume)"
    )
    train.add_argument("--patience", type=int, default=3, help="evaluations without AUC gain")
    train.add_argument(
        "--plateau-decay",
        type=float,
        default=0.2,  # training.job.PLATEAU_DECAY (test_quality_protocol.py)
        help="learning rates x this after an evaluation without AUC gain (1: off)",
    )
    train.add_argument(
        "--eval-share",
        type=float,
        default=0.0,
        help="share of the train split's rows held out of training and evaluated with the "
        "eval split (chosen by a fingerprint of the row: the same rows on every run)",
    )
    train.add_argument("--batch-size", type=int, default=512, help="rows per training step")
    train.add_argument(
        "--strategy",
        default="default",
        choices=["default", "mirrored", "multi_worker", "parameter_server", "tpu"],
        help="mirrored: data-parallel over every GPU (or the logical CPU devices); "
        "multi_worker: across the hosts in TF_CONFIG; parameter_server: the table sharded "
        "across TF_CONFIG's ps tasks (run the same command on every task); tpu: TPUStrategy "
        "on TPU_NAME",
    )
    train.add_argument(
        "--cpu-devices",
        type=int,
        default=1,
        help="split the CPU into N logical devices (to exercise multi-device code on CPU)",
    )
    train.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "float32", "mixed_bfloat16"],
        help="mixed_bfloat16: bfloat16 matrix work, float32 variables and loss; auto picks it "
        "where the hardware has native bfloat16 (AVX-512 BF16/AMX CPUs, TPUs, Ampere+ GPUs)",
    )
    train.add_argument(
        "--dnn-units",
        type=int,
        nargs="*",
        default=[256, 256],  # DEFAULT_TRAIN_MODEL's (test_quality_protocol.py)
        help="AutoInt+ DNN widths, dropout 0.2 (measured best, README 'Quality vs peers'); "
        "`--dnn-units` with no value: plain AutoInt",
    )
    train.add_argument("--seed", type=int, default=0, help="initializers and shuffling")
    train.set_defaults(run=_train)

    export = command("export", "SavedModel of a trained run as a new version")
    export.add_argument("--model-dir", required=True, help="the --model-dir of ue train")
    export.add_argument(
        "--export-base", required=True, help="versions go to <export-base>/<unix seconds>/"
    )
    export.set_defaults(run=_export)

    evaluate = command("evaluate", "score labelled raw rows with a SavedModel")
    evaluate.add_argument("--model", required=True, help="<export-base>/<version>")
    evaluate.add_argument("--input", required=True, help="labelled raw rows (CSV/TSV, .gz ok)")
    evaluate.add_argument(
        "--schema",
        default=None,
        help="criteo | avazu | frappe | FILE.json; None: the format of the model's own data "
        "(its assets/spec.json)",
    )
    evaluate.set_defaults(run=_evaluate)

    serve = command(
        "serve",
        "gRPC server over the newest version under --model-base-path, or the models of "
        "--model-config-file (hot reload)",
    )
    source = serve.add_mutually_exclusive_group(required=True)
    # TF Serving's spellings (--model_base_path, --rest_api_port, ...) are accepted as well.
    source.add_argument(
        "--model-base-path",
        "--model_base_path",
        help="the export base (--export-base) of one model; None: --model-config-file instead",
    )
    source.add_argument(
        "--model-config-file",
        "--model_config_file",
        help="TF Serving's ModelServerConfig in text format: several models, version policies "
        "and labels; None: --model-base-path instead",
    )
    serve.add_argument(
        "--model-config-file-poll-wait-seconds",
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=60.0,
        help="how often to re-read --model-config-file (0: read it once)",
    )
    serve.add_argument("--port", type=int, default=8500, help="gRPC port")
    serve.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve the network")
    serve.add_argument(
        "--model-name", "--model_name", default="default", help="the name requests ask for"
    )
    serve.add_argument(
        "--rest-api-port",
        "--rest_api_port",
        type=int,
        default=None,
        help="TF Serving's REST API and /monitoring/prometheus/metrics (0: a free port)",
    )
    serve.add_argument(
        "--rest-api-timeout-in-ms",
        "--rest_api_timeout_in_ms",
        type=int,
        default=30_000,
        help="a REST request unanswered this long gets 504",
    )
    serve.add_argument(
        "--batching-parameters-file",
        "--batching_parameters_file",
        default=None,
        help="TF Serving's BatchingParameters text file; its values override "
        "--max-batch-size, --max-wait-us, --model-threads, --max-queued-requests",
    )
    serve.add_argument("--version", type=int, default=None, help="pin a version")
    serve.add_argument(
        "--poll-seconds", type=float, default=1.0, help="how often to look for new versions"
    )
    serve.add_argument("--metrics-port", type=int, default=None, help="Prometheus /metrics")
    serve.add_argument("--no-batching", action="store_true", help="one model call per request")
    serve.add_argument("--max-batch-size", type=int, default=512, help="rows per model call")
    serve.add_argument(
        "--max-wait-us", type=int, default=0, help="wait this long for more rows to batch"
    )
    serve.add_argument("--model-threads", type=int, default=2, help="model calls at once")
    serve.add_argument(
        "--op-threads", type=int, default=1, help="TensorFlow intra/inter-op threads (0: default)"
    )
    serve.add_argument(
        "--max-queued-requests", type=int, default=1024, help="more: RESOURCE_EXHAUSTED"
    )
    serve.add_argument("--max-rows", type=int, default=4096, help="rows per request")
    serve.add_argument("--max-message-mb", type=int, default=16, help="largest gRPC message, MiB")
    serve.add_argument(
        "--grace-period-seconds",
        "--grace-seconds",
        type=float,
        default=10.0,
        help="on SIGTERM/SIGINT, how long requests in flight may take to finish",
    )
    serve.add_argument("--tls-certificate", default=None, help="PEM certificate chain")
    serve.add_argument("--tls-key", default=None, help="PEM private key")
    serve.add_argument(
        "--workers",
        type=int,
        default=0,
        help="server processes sharing --port (SO_REUSEPORT), each loading the models itself; "
        "0: one per core; with 2 or more, the parent replaces a worker that dies",
    )
    from serving.workers import WorkersConfig  # imports neither gRPC nor TensorFlow

    healing = {f.name: f.default for f in dataclasses.fields(WorkersConfig)}
    for flag, name, kind, text in (
        ("--spare-workers", "spares", int, "processes kept loaded, not listening, to replace a "
         "worker that dies at once (each holds the models in memory)"),
        ("--restart-backoff-seconds", "restart_backoff_seconds", float, "wait before forking a "
         "replacement; doubled for each further crash within --worker-crash-window-seconds"),
        ("--max-restart-backoff-seconds", "max_restart_backoff_seconds", float,
         "the longest such wait"),
        ("--max-worker-crashes", "max_crashes", int, "crashes within "
         "--worker-crash-window-seconds that stop the server (exit 1)"),
        ("--worker-crash-window-seconds", "crash_window_seconds", float,
         "see --max-worker-crashes"),
    ):  # fmt: skip
        serve.add_argument(flag, type=kind, default=healing[name], help=text)
    serve.set_defaults(run=_serve)

    predict = command("predict", "score rows of a file through a ue server")
    predict.add_argument("--target", required=True, help="host:port")
    predict.add_argument("--input", required=True, help="raw rows (CSV/TSV, .gz ok)")
    predict.add_argument(
        "--schema",
        default=None,
        help="criteo | avazu | frappe | FILE.json; None: the format of the served model's own "
        "data (the spec in its GetModelInfo)",
    )
    predict.add_argument("--model-name", default="", help="empty: the server's model")
    predict.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    predict.add_argument("--retries", type=int, default=3, help="retries on UNAVAILABLE")
    predict.add_argument("--batch-size", type=int, default=1024, help="rows per request")
    predict.add_argument(
        "--tls-root-certificate", default=None, help="PEM roots to verify the server (TLS)"
    )
    predict.add_argument(
        "--columns",
        action="store_true",
        help="send ranking requests: the rows as candidates, one column per field",
    )
    predict.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a field shared by every row, sent once per request instead of the file's column "
        "(repeatable; implies --columns)",
    )
    predict.set_defaults(run=_predict)

    demo = command("demo", "the whole path on generated data: preprocess, train, export, evaluate")
    # Defaults as `demo.DemoConfig`'s (not imported here: it pulls in TensorFlow and Beam).
    demo.add_argument("--rows", type=int, default=100_000, help="rows to generate")
    _add_synthetic_flags(demo)
    demo.set_defaults(weighted_top_k=3, signal_scale=2.0)  # learnable planted effects
    demo.add_argument(
        "--budget", type=_budget, default="30KB", help="embedding parameter budget with units"
    )
    demo.add_argument("--epochs", type=int, default=2, help="passes over the train split")
    demo.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds per layout"
    )
    demo.add_argument(
        "--no-compare", action="store_true", help="skip the per-feature-hash baseline"
    )
    demo.add_argument("--workdir", default=None, help="keep the artifacts here; None: a temp dir")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # TFRS needs legacy Keras: set before anything imports TensorFlow.
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in BEAM_JOBS:  # the pipeline owns its flags (and Beam's)
        from unified_embedding.runtime.startup import import_beam_quietly

        import_beam_quietly()
        if not {"-h", "--help"} & set(argv):
            _start_tensorflow()
        try:
            return BEAM_JOBS[argv[0]](argv[1:])
        except (ValueError, FileNotFoundError, FileExistsError) as e:
            print(f"ue {argv[0]}: error: {e}", file=sys.stderr)
            return 2
        except (RuntimeError, OSError) as e:  # a failed job; a runner wraps the cause, named last
            import re

            cause = (str(e).strip().splitlines() or [type(e).__name__])[-1]
            # a worker process's traceback ends `package.module.Error: message`
            cause = re.sub(r"^(?:[a-z_]\w*\.){2,}[A-Z]\w*: ", "", cause)
            print(f"ue {argv[0]}: failed: {cause}", file=sys.stderr)
            return 1
    args = build_parser().parse_args(argv)
    if args.command in TENSORFLOW_COMMANDS:
        _start_tensorflow()
    try:
        return int(args.run(args))
    except (ValueError, FileNotFoundError) as e:  # bad input: say what, exit 2, no traceback
        print(f"ue {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
