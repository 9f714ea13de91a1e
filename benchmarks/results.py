"""Recorded benchmark results, and the tables of `benchmarks/RESULTS.md` written from them.

Each benchmark prints one JSON line. `record` appends it to `benchmarks/results/<name>.jsonl`
(the name is the line's `benchmark` or `what`) with a `recorded` entry: the date, the command,
the commit and a note on the machine's load. `render` rewrites every table of RESULTS.md that
sits between `<!-- table: NAME -->` and `<!-- end table -->` from those lines, one row per
recorded run, newest first; the prose around the tables is written by hand.

    .venv/bin/python benchmarks/serve.py | .venv/bin/python benchmarks/results.py record \\
        --command "benchmarks/serve.py" --note "quiet machine, load 1.2"
    .venv/bin/python benchmarks/results.py render           # rewrite RESULTS.md's tables
    .venv/bin/python benchmarks/results.py render --check   # exit 1 when a table is stale

A line whose `recorded` entry says `"transcribed": true` was copied from an earlier write-up of
the run, which quoted only some of its figures: the others show as "-".
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
RESULTS_FILE = HERE / "RESULTS.md"
MISSING = "-"
_BLOCK = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- end table -->)", re.DOTALL)


def lookup(line: dict[str, Any], path: str) -> Any:
    """The value at a dotted `path` of a JSON line (`single_file.rows_per_s`); None if absent."""
    value: Any = line
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def number(value: Any) -> str:
    """Numbers as recorded (the benchmark chose their precision) with thousands separators,
    `a 1, b 2` for mappings, the text of anything else."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:,}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {number(v)}" for k, v in value.items()) or "none"
    return str(value)


@dataclass(frozen=True)
class Column:
    """A table column: the values at `paths`, each formatted, joined by " / "."""

    header: str
    paths: tuple[str, ...]
    format: Callable[[Any], str] = number
    context: bool = False  # says when and how; a run with nothing but context is left out

    def cell(self, line: dict[str, Any]) -> str:
        values = [lookup(line, path) for path in self.paths]
        if all(v is None for v in values):
            return MISSING
        return " / ".join(self.format(v) for v in values)


def col(
    header: str, *paths: str, fmt: Callable[[Any], str] = number, context: bool = False
) -> Column:
    return Column(header, paths, fmt, context)


def _p50_p99(path: str) -> tuple[str, str]:
    return f"{path}.p50_ms", f"{path}.p99_ms"


def ratio(value: Any) -> str:
    return MISSING if value is None else f"**{number(value)}**"


DATE = col("date", "recorded.date", context=True)
NOTE = col("run", "recorded.note", context=True)
LOAD = col("load", "load_average_1m", context=True)

# The tables RESULTS.md can hold: name -> (the benchmark whose lines it reads, its columns).
TABLES: dict[str, tuple[str, tuple[Column, ...]]] = {
    "preprocess": (
        "preprocess",
        (
            DATE,
            NOTE,
            col("1M rows in 4 files: rows/s", "rows_per_s"),
            col("first row s", "startup_seconds"),
            col("rows per CPU-s", "rows_per_cpu_s"),
            col("peak RSS MB", "peak_rss_mb_all_processes"),
            col("one file: GB", "single_file.gb"),
            col("rows/s", "single_file.rows_per_s"),
            col("rows per CPU-s", "single_file.rows_per_cpu_s"),
            col("peak RSS MB", "single_file.peak_rss_mb_all_processes"),
            col("per-row baseline rows/s", "per_row_baseline_rows_per_s"),
            col("`vs_per_row_baseline`", "vs_per_row_baseline", fmt=ratio),
        ),
    ),
    "score": (
        "score",
        (
            DATE,
            NOTE,
            col("rows", "rows"),
            col("job rows/s (end to end)", "job.rows_per_second"),
            col("in-process rows/s", "in_process.rows_per_second"),
            col("`vs_in_process`", "vs_in_process", fmt=ratio),
            col("start-up s", "startup_seconds"),
            col("without start-up", "vs_in_process_after_startup"),
            col("peak RSS MB (processes)", "job.peak_rss_mb_summed", "job.processes"),
        ),
    ),
    "serve_grpc": (
        "serve",
        (
            DATE,
            LOAD,
            col("`--pin-workers`", "pin_workers"),
            col(
                "in-process rows/s (1 / 2 threads)",
                "in_process.threads_1_rows_per_second",
                "in_process.threads_2_rows_per_second",
            ),
            col("baseline before / after", "in_process.best.before", "in_process.best.after"),
            col("ranking, 2 workers: rows/s", "ranking.rows_per_second"),
            col("p50 / p99 ms", "ranking.p50_ms", "ranking.p99_ms"),
            col("`ranking_vs_in_process`", "ranking_vs_in_process", fmt=ratio),
            col("1 worker: rows/s", "ranking_workers_1.rows_per_second"),
            col("vs in-process", "ranking_workers_1.vs_in_process"),
            col("sequential batch-1 p50 / p99 ms", "sequential_p50_ms", "sequential_p99_ms"),
            col("health check p50 ms", "sequential_health_check.p50_ms"),
        ),
    ),
    "serve_batch_1": (
        "serve",
        (
            DATE,
            LOAD,
            col("`--pin-workers`", "pin_workers"),
            col("gRPC, no model: p50 / p99 ms", *_p50_p99("breakdown.grpc_round_trip_no_model")),
            col("model call: session", *_p50_p99("breakdown.model_call_in_process")),
            col("tf.function", *_p50_p99("breakdown.model_call_in_process_tf_function")),
            col("server, gRPC", *_p50_p99("breakdown.server_grpc"), fmt=ratio),
            col("server, REST", *_p50_p99("breakdown.server_rest"), fmt=ratio),
        ),
    ),
    "serve_rest": (
        "serve",
        (
            DATE,
            LOAD,
            col("REST columnar rows/s", "rest.rows_per_second"),
            col("gRPC ranking rows/s", "ranking.rows_per_second", context=True),
            col("`rest_vs_grpc`", "rest_vs_grpc", fmt=ratio),
            col("REST batch-1 p50 / p99 ms", "rest.sequential.p50_ms", "rest.sequential.p99_ms"),
            col(
                "gRPC batch-1 p50 / p99 ms", "sequential_p50_ms", "sequential_p99_ms", context=True
            ),
            col("`rest_sequential_vs_grpc`", "rest_sequential_vs_grpc"),
        ),
    ),
    "peer_autoint": (
        "peer_autoint",
        (
            DATE,
            NOTE,
            col("rows", "rows"),
            col("peer train ex/s", "means.peer.train_examples_per_second"),
            col("ours / peer: float32", "ours_vs_peer_train.float32", fmt=ratio),
            col("bfloat16", "ours_vs_peer_train.mixed_bfloat16", fmt=ratio),
            col(
                "per CPU-s: float32 / bfloat16",
                "ours_vs_peer_train_cpu.float32",
                "ours_vs_peer_train_cpu.mixed_bfloat16",
            ),
            col(
                "predict: float32 / bfloat16",
                "ours_vs_peer_predict.float32",
                "ours_vs_peer_predict.mixed_bfloat16",
                fmt=ratio,
            ),
        ),
    ),
    "step_profile": (
        "step_profile",
        (
            DATE,
            NOTE,
            col(
                "step CPU ms: float32 / bfloat16",
                "float32.step_cpu_ms",
                "mixed_bfloat16.step_cpu_ms",
            ),
            col(
                "its matmuls",
                "float32.matmuls_cpu_ms",
                "mixed_bfloat16.matmuls_cpu_ms",
            ),
            col(
                "matmul floor",
                "float32.gemm_floor_cpu_ms",
                "mixed_bfloat16.gemm_floor_cpu_ms",
            ),
            col("`gemm_share`", "float32.gemm_share", "mixed_bfloat16.gemm_share", fmt=ratio),
        ),
    ),
    "daily": (
        "daily",
        (
            DATE,
            NOTE,
            col("days x rows", "days", "rows_per_day"),
            col("per-feature table learning rate", "table_learning_rates.per_feature"),
            col("`warm_vs_retrain_auc`", "warm_vs_retrain_auc", fmt=ratio),
            col("`warm_vs_retrain_seconds` (last day)", "warm_vs_retrain_seconds", fmt=ratio),
            col("`unified_vs_collisionless_new_ids`", "unified_vs_collisionless_new_ids"),
            col("warm within 0.003 AUC", "targets.warm_within_auc_of_retrain"),
            col("warm <= 1/3 s", "targets.warm_at_most_third_of_retrain_seconds"),
            col("unified ahead, new IDs", "targets.unified_ahead_on_new_ids"),
            col("warm calibrated", "targets.warm_calibrated_without_jump"),
            col("minutes", "minutes"),
        ),
    ),
    "elastic": (
        "elastic",
        (
            DATE,
            NOTE,
            col("seeds", "seeds", context=True),
            col(
                "nested - alone, width 2 / 4 (mean AUC)",
                "widths.2.nested_vs_baseline.mean",
                "widths.4.nested_vs_baseline.mean",
            ),
            col("nested 8 - today", "widths.8.nested_vs_baseline.mean"),
            col(
                "int8 - float32, width 8 (mean / min / max)",
                "widths.8.int8_vs_float32.mean",
                "widths.8.int8_vs_float32.min",
                "widths.8.int8_vs_float32.max",
            ),
            col("int8 bytes / float32", "targets.int8_bytes_ratio", fmt=ratio),
            col(
                "int8 / float32 batch-1 p50, Criteo / Frappe",
                "serving.criteo.batch1_int8_vs_float32",
                "serving.frappe.batch1_int8_vs_float32",
            ),
            col(
                "batched rows/s",
                "serving.criteo.batched_int8_vs_float32",
                "serving.frappe.batched_int8_vs_float32",
            ),
            col("narrow within 0.002", "targets.narrow_near_alone"),
            col("full within 0.001", "targets.full_near_today"),
            col("int8 within 0.0005", "targets.int8_near_float32"),
            col("seconds", "seconds"),
        ),
    ),
    "faults": (
        "faults",
        (
            DATE,
            LOAD,
            col("steady ok / failed", "phases.steady.ok", "phases.steady.failed"),
            col("new version", "phases.reload.ok", "phases.reload.failed"),
            col("corrupt version", "phases.corrupt.ok", "phases.corrupt.failed"),
            col("`kill -9` of a worker", "phases.kill.ok", "phases.kill.failed_by_code"),
            col("in flight on it", "phases.kill.in_flight_on_killed_worker"),
            col("spare listening s", "phases.kill.replacement_listening_seconds"),
            col("every worker answering s", "phases.kill.every_worker_answering_seconds"),
            col(
                "SIGTERM: in flight ok / failed",
                "phases.sigterm.sent_before.ok",
                "phases.sigterm.sent_before.failed",
            ),
            col("sent after it", "phases.sigterm.sent_after.failed_by_code"),
            col("exit s", "phases.sigterm.stop_seconds"),
            col("idle stop s", "idle_stop_seconds"),
        ),
    ),
}


def read_lines(benchmark: str) -> list[dict[str, Any]]:
    path = RESULTS_DIR / f"{benchmark}.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def table(name: str) -> str:
    """The markdown table `name`: one row per recorded run that holds any of its figures,
    newest first."""
    if name not in TABLES:
        raise ValueError(f"`table` should be one of {sorted(TABLES)}. Received: `table={name}`")
    benchmark, columns = TABLES[name]
    rows = [
        [c.cell(line) for c in columns]
        for line in reversed(read_lines(benchmark))
        if any(c.cell(line) != MISSING for c in columns if not c.context)
    ]
    out = ["| " + " | ".join(c.header for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(cells) + " |" for cells in rows]
    if not rows:
        out.append("| " + " | ".join([MISSING] * len(columns)) + " |")
    return "\n".join(out) + "\n"


def render(text: str) -> str:
    """`text` with every marked table rewritten from the recorded lines."""
    return _BLOCK.sub(lambda m: m.group(1) + table(m.group(2)) + m.group(4), text)


def record(line: str, command: str, note: str, name: str | None) -> Path:
    """Appends a benchmark's JSON line to its results file, with when, how and where."""
    result = json.loads(line)
    if not isinstance(result, dict):
        raise ValueError(f"a benchmark's line should be a JSON object. Received: {line[:80]!r}")
    name = name or result.get("benchmark") or result.get("what")
    if not name or not re.fullmatch(r"\w+", str(name)):
        raise ValueError(f"`--name` should name the benchmark. Received: `--name {name}`")
    entry = {"date": datetime.date.today().isoformat(), "commit": _commit(), "command": command}
    path = RESULTS_DIR / f"{name}.jsonl"
    path.parent.mkdir(exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"recorded": {**entry, "note": note}, **result}) + "\n")
    return path


def _commit() -> str | None:
    """The checked-out commit, `+` when the tree has changes; None outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+" if dirty else "")


def last_json_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return line
    raise ValueError("no JSON line on stdin: pipe a benchmark's output into `record`")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="action", required=True)
    add = commands.add_parser("record", help="append the JSON line on stdin to its results file")
    add.add_argument("--command", default="", help="the command that printed the line")
    add.add_argument("--note", default="", help="the machine and its load, what was measured")
    add.add_argument("--name", default=None, help="default: the line's `benchmark` or `what`")
    write = commands.add_parser("render", help="rewrite RESULTS.md's tables from the results")
    write.add_argument("--check", action="store_true", help="exit 1 when RESULTS.md is stale")
    args = parser.parse_args(argv)
    if args.action == "record":
        path = record(last_json_line(sys.stdin.read()), args.command, args.note, args.name)
        print(f"recorded in {path.relative_to(HERE.parent)}; now: results.py render")
        return 0
    text = RESULTS_FILE.read_text(encoding="utf-8")
    new = render(text)
    if args.check:
        if new != text:
            print(
                f"{RESULTS_FILE.name} is stale: run benchmarks/results.py render", file=sys.stderr
            )
            return 1
        return 0
    RESULTS_FILE.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
