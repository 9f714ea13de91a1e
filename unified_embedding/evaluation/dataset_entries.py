"""A notebook's `datasets` parameter: which labelled files a study reads, checked before any
training so that a bad entry stops it at once, in one line naming the key and the value.

`datasets` is a list. Each entry is either

- the name of a shared sample, `"criteo"`, `"avazu"` or `"frappe"`, read from `shared_data`
  (`../shared/data` by default) when it is there and skipped with a note when it is not; or
- your own files and their schema, as a mapping:

      {"name": "mine", "path": "data/day_*.csv.gz", "schema": "mine.json", "eval_fraction": 0.2}

  `name`: names the dataset's figures and rows (`pareto_mine.png`): letters, digits and `_.-`.
  `path`: a file or a glob, relative to the notebook's working directory (the repo root); plain
  or compressed (`.gz`, `.bz2`, `.xz`).
  `schema`: a built-in schema (`criteo`, `avazu`, `frappe`) or a schema file's path
  (`ue schema infer FILE` proposes one).
  `eval_fraction` (optional, default 0.2): the share of rows held out for evaluation, in (0, 1),
  by a seeded random split.

    sources, skipped = dataset_sources(datasets, shared_data)   # DatasetError when one is bad
"""

from __future__ import annotations

import dataclasses
import glob
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from unified_embedding.contract.schemas import load_schema
from unified_embedding.contract.spec import SpecError

GENERATED = "generated"  # the name of the generated dataset: not a name of the user's

# Real samples under the shared data folder (see its README): dataset -> file.
REAL_SAMPLES = {
    "criteo": "criteo/criteo_kaggle_head10k.tsv",
    "avazu": "avazu/avazu_train_head10k.csv",
    "frappe": "frappe/frappe_train.csv",
}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")  # names a figure file: pareto_<name>.png
_EXAMPLE = '{"name": "mine", "path": "data/*.csv", "schema": "mine.json"}'


class ParameterError(ValueError):
    """A notebook parameter that cannot be used; the message names it and its value."""

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback: the message says what to fix, and
        # the frames would only show where the check happens to live.
        return [f"{type(self).__name__}: {self}"]


class DatasetError(ParameterError):
    """A bad entry of `datasets`: the message names the entry's key and value."""


def require_lists(**parameters: Any) -> None:
    """Raises ParameterError for a parameter that is not a list: papermill's `-p` passes
    `[0, 1]` as text, `-y` parses it."""
    for name, value in parameters.items():
        if not isinstance(value, list):
            raise ParameterError(
                f"`{name}` should be a list (papermill -y '{name}: [...]', not -p). "
                f"Received: `{name}={value!r}`"
            )


@dataclass(frozen=True)
class DatasetSource:
    """A labelled dataset of the user's: its files and their schema (the module docstring)."""

    name: str
    path: str
    schema: str
    eval_fraction: float = 0.2

    def __post_init__(self) -> None:
        for key in ("name", "path", "schema"):
            if not isinstance(getattr(self, key), str):
                raise DatasetError(
                    f"`{key}` should be a string. Received: `{key}={getattr(self, key)!r}`"
                    f"{self._where()}"
                )
        if not _NAME.match(self.name) or self.name == GENERATED:
            raise DatasetError(
                f"`name` should be letters, digits and `_.-`, not `{GENERATED}`. "
                f"Received: `name={self.name!r}`"
            )
        fraction: Any = self.eval_fraction
        number = isinstance(fraction, int | float) and not isinstance(fraction, bool)
        if not number or not 0.0 < fraction < 1.0:
            raise DatasetError(
                f"`eval_fraction` should be a number in (0, 1). "
                f"Received: `eval_fraction={self.eval_fraction!r}`{self._where()}"
            )

    def _where(self) -> str:
        return f" for dataset `{self.name}`" if isinstance(self.name, str) else ""

    def files(self) -> list[Path]:
        """The files `path` names, sorted; DatasetError when it names none."""
        found = sorted(Path(p) for p in glob.glob(self.path) if Path(p).is_file())
        if not found:
            raise DatasetError(
                f"`path` matches no file. Received: `path={self.path!r}`{self._where()}"
            )
        return found

    def check(self) -> None:
        """Raises DatasetError unless `path` names files and `schema` loads."""
        self.files()
        try:
            load_schema(self.schema)
        except SpecError as e:
            raise DatasetError(f"`schema={self.schema!r}`{self._where()}: {e}") from None


def dataset_source(entry: Any, shared_data: str | Path) -> DatasetSource | None:
    """One entry of `datasets` as a source (the module docstring), checked; None for a shared
    sample absent from `shared_data` (or when `shared_data` is empty)."""
    if isinstance(entry, Mapping):
        keys = [f.name for f in dataclasses.fields(DatasetSource)]
        unknown = [k for k in entry if k not in keys]
        if unknown:
            raise DatasetError(
                f"a dataset entry's keys are {keys}. Received: the key `{unknown[0]}` in "
                f"`{dict(entry)}`"
            )
        absent = [k for k in keys[:3] if k not in entry]
        if absent:
            raise DatasetError(f"a dataset entry needs `{absent[0]}`. Received: `{dict(entry)}`")
        source = DatasetSource(**{k: _text(v) for k, v in entry.items()})
        source.check()
        return source
    if not isinstance(entry, str) or entry not in REAL_SAMPLES:
        raise DatasetError(
            f"a dataset entry should be a shared sample {sorted(REAL_SAMPLES)} or a mapping "
            f"like {_EXAMPLE}. Received: `{entry!r}`"
        )
    path = Path(shared_data) / REAL_SAMPLES[entry] if shared_data else None
    if path is None or not path.is_file():
        return None
    return DatasetSource(entry, str(path), entry)


def dataset_sources(
    entries: Sequence[Any], shared_data: str | Path
) -> tuple[list[DatasetSource], list[str]]:
    """Every entry of `datasets` checked: the sources, and the shared samples not found."""
    require_lists(datasets=entries)
    sources: list[DatasetSource] = []
    skipped: list[str] = []
    for entry in entries:
        source = dataset_source(entry, shared_data)
        if source is None:
            skipped.append(str(entry))
        elif source.name in {s.name for s in sources}:
            raise DatasetError(f"two datasets are named `{source.name}`: names should be unique")
        else:
            sources.append(source)
    return sources, skipped


def _text(value: Any) -> Any:
    """A path-like value as the string it spells (`Path("data/x.csv")`); others unchanged."""
    return str(value) if isinstance(value, PathLike) else value
