"""Score a labelled file with an exported model: find the version, read the rows, score them."""

from __future__ import annotations

from pathlib import Path

from unified_embedding.evaluate import score_file

__all__ = ["resolve_version", "score_file"]


def resolve_version(path: str | Path) -> Path:
    """`path` itself if it is a SavedModel, else its newest numeric version (`ue export` layout)."""
    root = Path(path)
    if (root / "saved_model.pb").is_file():
        return root
    versions = sorted(
        (p for p in root.glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file()),
        key=lambda p: int(p.name),
    )
    if not versions:
        raise FileNotFoundError(f"no SavedModel at {root} nor in numeric version folders under it")
    return versions[-1]
