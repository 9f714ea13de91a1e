"""docs/cli.md is what the parsers print: regenerate it with `python -m ue.docs`."""

from ue.docs import PAGE, render


def test_the_cli_reference_is_current() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), "run `python -m ue.docs`"


def test_the_cli_reference_shows_every_command() -> None:
    from ue.cli import COMMANDS

    page = render()
    for name in COMMANDS:
        assert f"## ue {name}\n" in page and f"usage: ue {name}" in page, name
