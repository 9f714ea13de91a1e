"""Flags built from config dataclasses: one default, shown by --help, parsed back into the
config."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from unified_embedding.runtime.flags import (
    add_flags,
    field_default,
    from_flags,
    option,
    values_of,
    with_flags,
)
from unified_embedding.runtime.helpformat import DefaultsHelpFormatter


@dataclass(frozen=True)
class Toy:
    data: Path = option(help="input folder")
    steps: int = option(100, "training steps")
    rate: float = option(0.5, "a rate", names=("--rate_alias",))
    layout: str = option("unified", "embedding layout", choices=("unified", "per_feature"))
    budget: str | None = option(None, "a budget; None: from the data")
    units: tuple[int, ...] = option((256, 256), "layer widths; none: no DNN")
    batching: bool = option(True, "merge requests")
    internal: int = 7  # no help: no flag


def parse(argv: list[str], **defaults: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser(formatter_class=DefaultsHelpFormatter)
    add_flags(parser, Toy, defaults=defaults)
    return parser.parse_args(argv)


def test_defaults_come_from_the_fields_and_parse_back() -> None:
    toy = from_flags(Toy, parse(["--data", "d"]))
    assert toy == Toy(data=Path("d"))
    assert toy.units == (256, 256) and toy.budget is None and toy.internal == 7


def test_every_kind_of_field_parses() -> None:
    argv = [
        "--data",
        "d",
        "--steps",
        "5",
        "--rate_alias",
        "0.1",
        "--layout",
        "per_feature",
        "--budget",
        "4MB",
        "--units",
        "--no-batching",
    ]
    toy = from_flags(Toy, parse(argv), internal=3)
    assert toy == Toy(Path("d"), 5, 0.1, "per_feature", "4MB", (), False, 3)


def test_help_shows_each_default_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "training steps (default: 100)" in text
    assert "layer widths; none: no DNN (default: [256, 256])" in text
    assert "--internal" not in text


def test_wrong_values_are_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--data", "d", "--steps", "x"], ["--data", "d", "--layout", "x"], []):
        with pytest.raises(SystemExit):
            parse(argv)
    err = capsys.readouterr().err
    assert "--steps: invalid int value: 'x'" in err
    assert "--layout: invalid choice: 'x'" in err
    assert "the following arguments are required: --data" in err


def test_a_command_may_change_a_default() -> None:
    assert from_flags(Toy, parse(["--data", "d"], steps=9)).steps == 9


@dataclass(frozen=True)
class Source:
    base_path: Path | None = option(None, "a base", flag="--model-base-path", names=("--mbp",))
    config_file: Path | None = option(None, "a file")
    pairs: tuple[str, ...] = option((), "NAME=VALUE, one per use", repeatable=True)
    poll: float = 1.0  # no help: no flag


def test_a_flag_may_have_its_own_name_and_aliases() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, Source)
    args = parser.parse_args(["--mbp", "e", "--pairs", "a=1", "--pairs", "b=2"])
    assert from_flags(Source, args) == Source(Path("e"), None, ("a=1", "b=2"))
    assert "--model-base-path MODEL_BASE_PATH" in parser.format_help()
    assert "--base-path" not in parser.format_help()


def test_only_and_exclude_split_a_config_over_groups() -> None:
    parser = argparse.ArgumentParser()
    either = parser.add_mutually_exclusive_group(required=True)
    add_flags(either, Source, only=("base_path", "config_file"))
    add_flags(parser, Source, exclude=("base_path", "config_file"))
    with pytest.raises(SystemExit):
        parser.parse_args(["--model-base-path", "e", "--config-file", "c"])
    assert from_flags(Source, parser.parse_args(["--config-file", "c"])).config_file == Path("c")


def test_two_flags_for_one_name_are_refused() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, Toy)
    with pytest.raises(TypeError, match="two flags would set `steps`"):
        add_flags(parser, Toy, only=("steps",))


def test_a_nested_config_starts_from_the_enclosing_configs_value() -> None:
    """`TrainJob().model` is not `AutoIntConfig()`: its flags default to the former's values,
    and `with_flags` changes only what the flags set."""
    chosen = Toy(data=Path("d"), steps=7, units=(8,))
    parser = argparse.ArgumentParser()
    add_flags(parser, Toy, defaults=values_of(chosen))
    assert with_flags(chosen, parser.parse_args([])) == chosen
    assert with_flags(chosen, parser.parse_args(["--steps", "9"])) == replace(chosen, steps=9)
    assert field_default(Source, "pairs") == () and field_default(Toy, "steps") == 100
