"""Throughput of `write_tsv` (uncompressed) into a temporary directory; prints one JSON line.

Run: `.venv/bin/python benchmarks/generate.py --rows 1000000`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from unified_embedding.synthetic import SyntheticConfig, planted_model, write_tsv

TARGET_ROWS_PER_SECOND = 200_000


def run(argv: Sequence[str] | None = None) -> dict[str, float | int | str]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = SyntheticConfig(seed=args.seed)
    planted_model(config)  # one-time setup (bias calibration), not per-row cost
    with tempfile.TemporaryDirectory() as tmp:
        report = write_tsv(Path(tmp) / "generated.tsv", args.rows, config)
    result: dict[str, float | int | str] = {
        "benchmark": "generate",
        "rows": report.rows,
        "seconds": round(report.seconds, 3),
        "rows_per_second": round(report.rows_per_second),
        "target_rows_per_second": TARGET_ROWS_PER_SECOND,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run()
