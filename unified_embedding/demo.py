"""`ue demo`: generated data -> AutoInt + Unified Embedding -> eval AUC next to the planted ceiling.

Later stages of the product (Beam pipeline, export, serving) join this path as they land.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unified_embedding.budget import parse_budget, plan_budget
from unified_embedding.experiment import ExperimentResult, TrainConfig, train_and_evaluate
from unified_embedding.metrics import roc_auc
from unified_embedding.rows import RawRows, read_rows
from unified_embedding.schemas import criteo
from unified_embedding.synthetic import DEFAULT_CONFIG, SyntheticConfig, generate, write_tsv


@dataclass(frozen=True)
class DemoConfig:
    rows: int = 300_000
    synthetic: SyntheticConfig = DEFAULT_CONFIG
    budget: str = "1MB"
    epochs: int = 1
    eval_fraction: float = 0.1
    compare: bool = True


def split(rows: RawRows, eval_fraction: float) -> tuple[RawRows, RawRows, np.ndarray]:
    """The last `eval_fraction` of rows is held out (rows are generated i.i.d.)."""
    cut = int(len(rows) * (1 - eval_fraction))
    index = np.arange(len(rows))
    return rows.take(index[:cut]), rows.take(index[cut:]), index[cut:]


def _line(result: ExperimentResult, planted_auc: float) -> str:
    lift = (result.auc - 0.5) / (planted_auc - 0.5)
    return (
        f"  {result.layout:<12} auc {result.auc:.4f} ({lift:6.1%} of planted lift)  "
        f"logloss {result.logloss:.4f}  embedding params {result.embedding_params:>9,}  "
        f"{result.train_examples_per_second:,.0f} train ex/s"
    )


def run_demo(config: DemoConfig = DemoConfig()) -> dict[str, Any]:
    synthetic = config.synthetic
    spec = criteo()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "generated.tsv"
        report = write_tsv(path, config.rows, synthetic)
        print(
            f"generated {report.rows:,} rows at {report.rows_per_second:,.0f} rows/s "
            f"(label rate {report.label_rate:.3f}) -> {path.name}"
        )
        rows = read_rows(spec, path)
    train, evaluation, eval_index = split(rows, config.eval_fraction)
    truth = generate(config.rows, synthetic).probabilities[eval_index]
    planted_auc = roc_auc(evaluation.labels, truth)
    budget = parse_budget(config.budget)
    cardinalities = {f"C{i + 1}": c for i, c in enumerate(synthetic.cardinalities)}
    plan = plan_budget(spec, budget, cardinalities)
    print(
        f"budget {config.budget}: shared table {plan.table.rows:,} x {plan.table.width}; "
        f"params unified {plan.params.unified:,}, per-feature hash {plan.params.per_feature:,}, "
        f"collision-free {plan.params.collisionless:,}"
    )
    layouts = ["unified", "per_feature"] if config.compare else ["unified"]
    train_config = TrainConfig(epochs=config.epochs, seed=synthetic.seed)
    results = []
    print(f"eval on {len(evaluation):,} held-out rows; planted model auc {planted_auc:.4f}")
    for layout in layouts:
        _, result = train_and_evaluate(
            spec, layout, train, evaluation, budget, train_config=train_config
        )
        print(_line(result, planted_auc))
        results.append(result)
    return {
        "rows": config.rows,
        "planted_auc": planted_auc,
        "budget": plan.to_dict(),
        "results": [dataclasses.asdict(r) for r in results],
    }
