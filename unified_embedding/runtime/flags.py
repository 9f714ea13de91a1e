"""Command-line flags built from config dataclasses: a default and its help are written once, in
the dataclass field, and `--help` shows that default.

    @dataclass(frozen=True)
    class BatchingConfig:
        max_batch_size: int = option(512, "rows per model call")
        max_wait_us: int = option(0, "wait this long for more rows", names=("--batch-timeout-us",))

    add_flags(parser, BatchingConfig)            # --max-batch-size, --max-wait-us, ...
    config = from_flags(BatchingConfig, args)    # BatchingConfig(max_batch_size=..., ...)

A field becomes `--field-name` (or `flag`, plus any alias in `names`); its type gives the
parsing: `int`, `float`, `str`, `Path`, `X | None` (default None), `bool` (`--x` / `--no-x`) and
`tuple[X, ...]` (zero or more values; numbers also comma-separated: `--nested-widths 2,4,8`).
Fields without `help` metadata (nested configs, internal settings) get no flag. A nested config's
flags take the enclosing config's values as defaults (`defaults=values_of(TrainJob().model)`),
and `with_flags` sets them back on that value.
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

from unified_embedding.runtime.helpformat import DefaultsHelpFormatter

HELP = "help"
FLAG = "flag"
NAMES = "names"
CHOICES = "choices"
METAVAR = "metavar"
REPEATABLE = "repeatable"
_MISSING: Any = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    help: str = "",
    *,
    flag: str | None = None,
    names: Sequence[str] = (),
    choices: Sequence[Any] | None = None,
    metavar: str | None = None,
    repeatable: bool = False,
    default_factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag. No `default`: a required flag.
    `flag` replaces the name `--field-name` (where the command's context needs another, e.g.
    `--model-base-path` for `ManagerConfig.base_path`); `names` are further spellings (TF
    Serving's `--model_base_path`). A `repeatable` tuple takes one value per use of its flag
    (`--context a=1 --context b=2`) instead of several values after one."""
    metadata = {
        HELP: help,
        FLAG: flag,
        NAMES: tuple(names),
        CHOICES: choices,
        METAVAR: metavar,
        REPEATABLE: repeatable,
    }
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The parser of one `ue` command (`prog`: `ue train`); `--help` shows each optional flag's
    default after its help."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=DefaultsHelpFormatter
    )


def flag_name(field: str | dataclasses.Field[Any]) -> str:
    """The flag that sets `field`: its `flag`, else `--field-name`."""
    if isinstance(field, dataclasses.Field):
        return field.metadata.get(FLAG) or flag_name(field.name)
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


def values_of(config: Any) -> dict[str, Any]:
    """The flag fields' values of a config instance: the defaults of its flags where a command
    starts from that instance (`TrainJob().model`) rather than the class's defaults."""
    return {f.name: getattr(config, f.name) for f in flag_fields(type(config))}


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:
        factory: Callable[[], Any] = field.default_factory  # type: ignore[assignment]
        return factory()
    return _MISSING


def field_default(cls: type, name: str) -> Any:
    """The default of field `name` of dataclass `cls` (its factory's value, if it has one)."""
    (field,) = [f for f in dataclasses.fields(cls) if f.name == name]
    return _default(field)


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    only: Iterable[str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> None:
    """Adds a flag for each field of `cls` with help (those in `only`, if given), except
    `exclude`; `defaults` overrides a field's default for this command (e.g. the demo's
    smaller data; None makes a required field optional). Two flags setting one name (`dest`)
    are refused: `from_flags` could not tell them apart."""
    hints = typing.get_type_hints(cls)
    skipped, kept = set(exclude), None if only is None else set(only)
    taken = {action.dest for action in parser._actions}
    for field in flag_fields(cls):
        if field.name in skipped or (kept is not None and field.name not in kept):
            continue
        if field.name in taken:
            raise TypeError(f"two flags would set `{field.name}`; exclude one. Received: `{cls}`")
        meta = field.metadata
        kind, optional, repeated = _parts(hints[field.name])
        default = (defaults or {}).get(field.name, _default(field))
        names = (flag_name(field), *meta[NAMES])
        kwargs: dict[str, Any] = {"help": meta[HELP], "dest": field.name}
        if default is _MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = list(default) if repeated else default
        if kind is bool and not repeated:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = Path if kind is Path else kind
            if repeated and meta[REPEATABLE]:
                kwargs["action"] = "append"
            elif repeated:
                kwargs["nargs"] = "*"
                if kind in (int, float):
                    kwargs["type"] = _comma_separated(kind)
            if meta[CHOICES] is not None:
                kwargs["choices"] = list(meta[CHOICES])
            if meta[METAVAR] is not None:
                kwargs["metavar"] = meta[METAVAR]
            elif meta[FLAG] and meta[CHOICES] is None:  # named after the flag, not the field
                kwargs["metavar"] = names[0][2:].replace("-", "_").upper()
        if optional and "required" not in kwargs and kwargs.get("default") is None:
            kwargs["default"] = None
        parser.add_argument(*names, **kwargs)


def _comma_separated(kind: type) -> Callable[[str], list[Any]]:
    """Parses `2,4,8` (or `2`) into numbers of `kind`; argparse names `kind` when one is not."""

    def parse(text: str) -> list[Any]:
        return [kind(part) for part in text.split(",") if part.strip()]

    parse.__name__ = kind.__name__
    return parse


def _flatten(values: Iterable[Any]) -> tuple[Any, ...]:
    """Values of a repeated flag: lists from `_comma_separated` spread into one tuple."""
    out: list[Any] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return tuple(out)


def _flag_values(cls: type, args: argparse.Namespace, skip: Iterable[str]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    skipped = set(skip)
    kwargs: dict[str, Any] = {}
    for field in flag_fields(cls):
        if field.name in skipped or not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        if _parts(hints[field.name])[2] and value is not None:
            value = _flatten(value)
        kwargs[field.name] = value
    return kwargs


def from_flags(cls: type, args: argparse.Namespace, **values: Any) -> Any:
    """`cls(**values, **{field: args.field for every flag field args has})`."""
    return cls(**_flag_values(cls, args, values), **values)


def with_flags(config: Any, args: argparse.Namespace, **values: Any) -> Any:
    """`config` with its flag fields that `args` has (and `values`) replaced."""
    changes = _flag_values(type(config), args, values)
    return dataclasses.replace(config, **changes, **values)
