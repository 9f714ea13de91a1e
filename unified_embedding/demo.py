"""`ue demo`: the whole path on generated data, ending with held-out AUC next to the ceiling.

generate -> Beam preprocessing -> train AutoInt (unified table, and per-feature hashing at the
same budget from the same records) -> export SavedModels -> evaluate them on held-out raw rows
-> serve the unified model over gRPC on a free loopback port, score held-out rows through the
client, check they equal the in-process SavedModel's scores, stop the server.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.preprocess import run as preprocess
from unified_embedding.budget import parse_budget, plan_budget
from unified_embedding.evaluate import evaluate
from unified_embedding.experiment import TrainConfig
from unified_embedding.export import export
from unified_embedding.metrics import roc_auc
from unified_embedding.schemas import criteo
from unified_embedding.synthetic import DEFAULT_CONFIG, SyntheticConfig, generate, write_tsv
from unified_embedding.train import TrainJob, load_trained, train


@dataclass(frozen=True)
class DemoConfig:
    rows: int = 300_000
    holdout_rows: int = 30_000
    synthetic: SyntheticConfig = DEFAULT_CONFIG
    budget: str = "1MB"
    epochs: int = 1
    batch_size: int = 512
    compare: bool = True
    served_rows: int = 2_000


def _line(layout: str, report: dict[str, Any], planted_auc: float, summary: dict[str, Any]) -> str:
    lift = (report["auc"] - 0.5) / (planted_auc - 0.5)
    return (
        f"  {layout:<12} auc {report['auc']:.4f} ({lift:6.1%} of planted lift)  "
        f"logloss {report['logloss']:.4f}  calibration {report['calibration']:.3f}  "
        f"embedding params {summary['embedding_params']:>9,}"
    )


def run_demo(config: DemoConfig = DemoConfig(), workdir: str | None = None) -> dict[str, Any]:
    """generate -> preprocess -> train (per layout) -> export -> evaluate held-out rows."""
    with contextlib.ExitStack() as stack:
        root = Path(workdir or stack.enter_context(tempfile.TemporaryDirectory()))
        root.mkdir(parents=True, exist_ok=True)
        return _run(config, root)


def _run(config: DemoConfig, root: Path) -> dict[str, Any]:
    synthetic, spec = config.synthetic, criteo()
    rows_file, holdout_file = root / "rows.tsv", root / "holdout.tsv"
    report = write_tsv(rows_file, config.rows, synthetic)
    holdout = generate(config.holdout_rows, synthetic, start_row=config.rows)
    holdout_file.write_bytes(holdout.to_tsv_bytes())
    planted_auc = roc_auc(holdout.labels, holdout.probabilities)
    print(
        f"1. generated {report.rows:,} rows at {report.rows_per_second:,.0f} rows/s, "
        f"{config.holdout_rows:,} held-out rows; planted model auc {planted_auc:.4f}"
    )

    started = time.perf_counter()
    stats = preprocess(["--input", str(rows_file), "--schema", "criteo", "--output",
                        str(root / "prep"), "--budget", config.budget])  # fmt: skip
    print(
        f"2. preprocessed {stats['rows_read']:,} rows in {time.perf_counter() - started:.0f} s: "
        f"{stats['rows_by_split']['train']:,} train, {stats['rows_by_split']['eval']:,} eval, "
        f"{stats['rows_dead']} dead-lettered"
    )

    budget = parse_budget(config.budget)
    cardinalities = {f"C{i + 1}": c for i, c in enumerate(synthetic.cardinalities)}
    plan = plan_budget(spec, budget, cardinalities)
    print(
        f"3. budget {config.budget}: shared table {plan.table.rows:,} x {plan.table.width}; "
        f"params unified {plan.params.unified:,}, per-feature hash {plan.params.per_feature:,},"
        f" collision-free {plan.params.collisionless:,}"
    )
    steps = max(1, config.epochs * stats["rows_by_split"]["train"] // config.batch_size)
    results = {}
    for layout in ["unified", "per_feature"] if config.compare else ["unified"]:
        job = TrainJob(str(root / "prep"), str(root / "models" / layout), layout=layout,
                       budget=config.budget, steps=steps, eval_every=max(1, steps // 4),
                       checkpoint_every=max(1, steps // 8), batch_size=config.batch_size,
                       optimizer=TrainConfig(seed=synthetic.seed))  # fmt: skip
        summary = train(job)
        model, run = load_trained(job.model_dir)
        version = export(model, run.feature_spec(), root / "export" / layout)
        evaluation = evaluate(version, holdout_file, "criteo")
        print(
            f"4. trained {layout} ({summary['steps']} steps), exported {version.name}, "
            f"evaluated on held-out rows:"
        )
        print(_line(layout, evaluation, planted_auc, summary))
        results[layout] = {"train": summary, "evaluate": evaluation, "export": str(version)}
    served = _serve(root / "export" / "unified", holdout_file, config.served_rows)
    return {"rows": config.rows, "planted_auc": planted_auc, "budget": plan.to_dict(),
            "results": results, "served": served}  # fmt: skip


def _serve(export_base: Path, holdout_file: Path, count: int) -> dict[str, Any]:
    """`ue serve` in-process on a free loopback port; the client scores held-out rows."""
    import numpy as np

    from serving.client import RankingClient, rows_from_file
    from serving.model_manager import ManagerConfig
    from serving.server import BackgroundServer, ServerConfig
    from unified_embedding.evaluate import score_rows
    from unified_embedding.rows import read_rows

    started = time.perf_counter()
    config = ServerConfig(ManagerConfig(export_base), port=0, grace_seconds=5.0)
    with BackgroundServer(config) as server, RankingClient(server.target) as client:
        info = client.model_info()
        rows = rows_from_file(holdout_file, "criteo", info)[:count]
        served = np.array(client.predict(rows), np.float32)
    version = export_base / str(info.model_spec.version)
    expected = score_rows(version, read_rows(criteo(), holdout_file).take(np.arange(len(rows))))
    max_difference = float(np.abs(served - expected).max())
    if max_difference > 1e-5:
        raise RuntimeError(f"served scores differ from the SavedModel's by {max_difference:.2e}")
    print(
        f"5. served version {version.name} on {server.target}: {len(rows):,} held-out rows "
        f"scored over gRPC equal the in-process SavedModel (max difference "
        f"{max_difference:.1e}), {time.perf_counter() - started:.1f} s; server stopped"
    )
    return {"version": int(version.name), "rows": len(rows), "max_difference": max_difference}
