"""The CLI reference, docs/cli.md, written from the parsers: `ue --help`, then every command's
`--help` in that order, so the page shows exactly the flags and defaults the code has.

    python -m ue.docs           # rewrite docs/cli.md
    python -m ue.docs --check   # exit 1 if docs/cli.md differs from what the parsers say
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from ue.cli import COMMANDS, main

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
WIDTH = 100  # columns argparse wraps the help at, whatever the terminal


@contextlib.contextmanager
def _columns(width: int) -> Iterator[None]:
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def help_text(argv: Sequence[str]) -> str:
    """What `ue ARGV --help` prints."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), _columns(WIDTH), contextlib.suppress(SystemExit):
        main([*argv, "--help"])
    return out.getvalue().rstrip() + "\n"


def render() -> str:
    sections = [
        "# Command-line reference\n",
        "Every `ue` command and its flags, as `--help` prints them. Generated from the parsers\n"
        "by `python -m ue.docs`: edit a flag's help in its config dataclass, not this page.\n",
    ]
    pages: list[list[str]] = [[]]  # `ue` itself, then each command, each with its subcommands
    for name, command in COMMANDS.items():
        pages += [[name], *([name, sub] for sub in command.subcommands)]
    for argv in pages:
        title = " ".join(["ue", *argv])
        sections.append(f"## {title}\n\n```text\n{help_text(argv)}```\n")
    return "\n".join(sections)


def main_docs(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ue.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
        if current != page:
            print(f"{PAGE} is stale: run `python -m ue.docs`", file=sys.stderr)
            return 1
        return 0
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(page, encoding="utf-8")
    print(PAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main_docs())
