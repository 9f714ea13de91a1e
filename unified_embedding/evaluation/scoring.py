"""Score a labelled file with an exported model: find the version, read the rows, score them."""

from __future__ import annotations

from pathlib import Path

from unified_embedding.contract.artifacts import resolve_saved_model
from unified_embedding.evaluation.evaluate import score_file

__all__ = ["resolve_version", "score_file"]


def resolve_version(path: str | Path) -> Path:
    """`path` itself if it is a SavedModel, else its newest numeric version (`ue export` layout)."""
    return resolve_saved_model(path)
