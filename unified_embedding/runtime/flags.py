"""Command-line flags built from config dataclasses: a default and its help are written once, in
the dataclass field, and `--help` shows that default.

    @dataclass(frozen=True)
    class BatchingConfig:
        max_batch_size: int = option(512, "rows per model call")
        max_wait_us: int = option(0, "wait this long for more rows", names=("--batch-timeout-us",))

    add_flags(parser, BatchingConfig)            # --max-batch-size, --max-wait-us, ...
    config = from_flags(BatchingConfig, args)    # BatchingConfig(max_batch_size=..., ...)

A field becomes `--field-name` (plus any `names`); its type gives the parsing: `int`, `float`,
`str`, `Path`, `X | None` (default None), `bool` (`--x` / `--no-x`) and `tuple[X, ...]` (zero or
more values). Fields without `help` metadata (nested configs, internal settings) get no flag.
Nothing here imports TensorFlow or Beam: a wrong flag is refused before either starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

HELP = "help"
NAMES = "names"
CHOICES = "choices"
METAVAR = "metavar"
_MISSING: Any = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    help: str = "",
    *,
    names: Sequence[str] = (),
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag. No `default`: a required flag."""
    metadata = {HELP: help, NAMES: tuple(names), CHOICES: choices, METAVAR: metavar}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _parts(hint: Any) -> tuple[Any, bool, bool]:
    """(element type, optional, repeated) of a field's type hint."""
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"a flag needs one type besides None. Received: `{hint}`")
        hint = args[0]
    if typing.get_origin(hint) in (tuple, list):
        return typing.get_args(hint)[0], optional, True
    return hint, optional, False


def flag_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields of `cls` that are flags (those with help)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get(HELP)]


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:
        factory: Callable[[], Any] = field.default_factory  # type: ignore[assignment]
        return factory()
    return _MISSING


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    defaults: dict[str, Any] | None = None,
) -> None:
    """Adds a flag for each field of `cls` with help, except `exclude`; `defaults` overrides a
    field's default for this command (e.g. the demo's smaller data)."""
    hints = typing.get_type_hints(cls)
    skipped = set(exclude)
    for field in flag_fields(cls):
        if field.name in skipped:
            continue
        meta = field.metadata
        kind, optional, repeated = _parts(hints[field.name])
        default = (defaults or {}).get(field.name, _default(field))
        names = (flag_name(field.name), *meta[NAMES])
        kwargs: dict[str, Any] = {"help": meta[HELP], "dest": field.name}
        if default is _MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = list(default) if repeated else default
        if kind is bool and not repeated:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = Path if kind is Path else kind
            if repeated:
                kwargs["nargs"] = "*"
            if meta[CHOICES] is not None:
                kwargs["choices"] = list(meta[CHOICES])
            if meta[METAVAR] is not None:
                kwargs["metavar"] = meta[METAVAR]
        if optional and "required" not in kwargs and kwargs.get("default") is None:
            kwargs["default"] = None
        parser.add_argument(*names, **kwargs)


def from_flags(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """`cls(**values, **{field: args.field for every flag field args has})`."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for field in flag_fields(cls):
        if field.name in values or not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        if _parts(hints[field.name])[2] and value is not None:
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs, **values)
