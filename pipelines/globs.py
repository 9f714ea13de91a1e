"""Could one path match two globs? Beam's glob language (`FileSystems.match`), decided exactly.

    globs_overlap("data/**", "data/out/spec.json")   # True: the input would read an output
    globs_overlap("out/*.tsv", "out/train-*.tfrecord.gz")   # False
    globs_overlap("o[1]/*", literal("o[1]") + "/spec.json")   # False: `o[1]/*` means `o1/*`

The language is `FileSystem.translate_pattern`'s: `*` is any run of characters but `/` and
`\\`, `**` any run at all, `?` any one character, `[...]` / `[!...]` a character class, anything
else itself. Both globs become sequences of one-character sets, some repeatable (the stars);
a path matching both exists iff the end of both is reachable from their starts, consuming one
character at a time that both sides accept (a product of the two automata, searched depth
first: at most len(a) * len(b) states). Each character class is tested with the regex Beam
builds for it, on every character the globs name and its two neighbours (membership of a class
only changes at the characters it names), plus one character neither names.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

from apache_beam.io.filesystem import FileSystem


@dataclass(frozen=True)
class _Step:
    """One character of a path from the set `accepts` (indexes into the shared alphabet),
    or any number of them when `repeats` (a star)."""

    accepts: frozenset[int]
    repeats: bool


def _spans(glob: str) -> list[str]:
    """The glob cut into its tokens, as `translate_pattern` reads them."""
    spans, i, n = [], 0, len(glob)
    while i < n:
        if glob.startswith("**", i):
            spans.append("**")
            i += 2
        elif glob[i] == "[":
            j = i + 1
            if j < n and glob[j] == "!":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            end = j + 1 if j < n else i + 1  # no closing bracket: a literal `[`
            spans.append(glob[i:end])
            i = end
        else:
            spans.append(glob[i])
            i += 1
    return spans


def _alphabet(*globs: str) -> list[str]:
    named = {ord(c) for glob in globs for c in glob} | {ord("/"), ord("\\")}
    codes = {c + d for c in named for d in (-1, 0, 1) if 0 <= c + d <= 0x10FFFF}
    fresh = next(c for c in range(0x4E00, 0x10FFFF) if c not in codes)  # named by neither
    return [chr(c) for c in sorted(codes | {fresh})]


def _steps(glob: str, alphabet: list[str]) -> list[_Step]:
    steps = []
    for span in _spans(glob):
        if span in ("*", "**"):
            slash = span == "*"
            accepts = frozenset(i for i, c in enumerate(alphabet) if not (slash and c in "/\\"))
        elif span == "?" or (span.startswith("[") and len(span) > 1):
            with warnings.catch_warnings():  # `[[]` warns as a possible nested set
                warnings.simplefilter("ignore", FutureWarning)
                regex = re.compile(FileSystem.translate_pattern(span))
            accepts = frozenset(i for i, c in enumerate(alphabet) if regex.match(c))
        else:
            accepts = frozenset([alphabet.index(span)])
        steps.append(_Step(accepts, repeats=span in ("*", "**")))
    return steps


def literal(path: str) -> str:
    """A glob matching exactly `path` (its `*`, `?` and `[` each in a one-character class)."""
    return re.sub(r"[*?[]", lambda m: f"[{m.group()}]", path)


def globs_overlap(a: str, b: str) -> bool:
    """True when some path matches both globs (a plain path is a glob matching itself)."""
    alphabet = _alphabet(a, b)
    x, y = _steps(a, alphabet), _steps(b, alphabet)
    seen: set[tuple[int, int]] = set()
    pending = [(0, 0)]
    while pending:
        i, j = state = pending.pop()
        if state in seen:
            continue
        seen.add(state)
        if i == len(x) and j == len(y):
            return True
        if i < len(x) and x[i].repeats:
            pending.append((i + 1, j))  # the star ends
        if j < len(y) and y[j].repeats:
            pending.append((i, j + 1))
        both = i < len(x) and j < len(y)
        # one character both accept (two stars consuming one go nowhere new)
        if both and x[i].accepts & y[j].accepts and not (x[i].repeats and y[j].repeats):
            pending.append((i + (not x[i].repeats), j + (not y[j].repeats)))
    return False
