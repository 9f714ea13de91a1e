"""Probes per hashed field: fixed, or multi-size from distinct counts (`--probes auto`).

Multi-size Unified Embedding (Coleman et al., NeurIPS 2023, figure 1): a field with more
distinct values gets more lookups into the shared table, concatenated. Here each field still
comes out `embedding_dim` wide (AutoInt attends over equal-width fields): a field whose
`probes * width` differs gets the layer's learned projection, paid from the same budget.

    spec = with_probes(spec, "auto", distinct, recorded=data_spec)  # 1 probe <= 100 values, ...
    spec = with_probes(spec, "3", distinct, recorded=data_spec)     # every hashed field: 3

Probe j of field f is salted by (f, j) alone, so the first k of a field's recorded fingerprints
are exactly what k probes hash: records written with K probes serve any run with k <= K, and
the exported model hashes its own k in-graph.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unified_embedding.contract.artifacts import STATS_FILE
from unified_embedding.contract.spec import FeatureSpec, SpecError

AUTO = "auto"
AUTO_MAX_PROBES = 4


def auto_probes(distinct: int, max_probes: int = AUTO_MAX_PROBES) -> int:
    """1 probe up to 100 distinct values, one more per factor of 10 beyond, at most
    `max_probes`: 101-1,000 values -> 2, 1,001-10,000 -> 3, more -> 4."""
    return max(1, min(max_probes, math.ceil(math.log10(max(distinct, 1))) - 1))


def parse_probes(text: str | int | None) -> str | int | None:
    """`auto`, a probe count in [1, 64], or None (the records' probes)."""
    if text is None or text == AUTO:
        return text
    try:
        probes = int(text)
    except ValueError:
        probes = 0
    if not 1 <= probes <= 64:
        raise SpecError(
            f"`probes` should be `auto` or an integer in [1, 64]. Received: `probes={text!r}`"
        )
    return probes


def with_probes(
    spec: FeatureSpec,
    probes: str | int | None,
    distinct: Mapping[str, int] | None = None,
    recorded: FeatureSpec | None = None,
) -> FeatureSpec:
    """`spec` with `probes` on every hashed field: an int, `auto` (from `distinct`, stats.json's
    `approx_distinct`), or None (unchanged). `recorded`: the spec the records were written
    with; a field cannot use more probes than were recorded (auto stops there)."""
    probes = parse_probes(probes)
    if probes is None:
        return spec
    fields = []
    for f in spec.fields:
        if f.is_hashed:
            limit = recorded.field(f.name).probes if recorded is not None else 64
            if probes == AUTO:
                if distinct is None or f.name not in distinct:
                    raise SpecError(
                        f"`--probes auto` needs the distinct count of field "
                        f"`{f.name}` (stats.json of `ue preprocess`)"
                    )
                count = auto_probes(int(distinct[f.name]), min(AUTO_MAX_PROBES, limit))
            else:
                assert isinstance(probes, int)
                if probes > limit:
                    raise SpecError(
                        f"`probes` exceeds the {limit} probes recorded for field "
                        f"`{f.name}`. Received: `probes={probes}` (rerun `ue "
                        f"preprocess --probes {probes}`)"
                    )
                count = probes
            f = dataclasses.replace(f, probes=count)
        fields.append(f)
    return spec.replace(fields=tuple(fields))


def read_stats(data_dir: str | Path) -> dict[str, Any] | None:
    """The data directory's stats.json (`ue preprocess`); None without one."""
    path = Path(data_dir) / STATS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def distinct_counts(stats: Mapping[str, Any] | None) -> dict[str, int] | None:
    """Each categorical field's `approx_distinct` in stats.json; None without stats."""
    if stats is None:
        return None
    fields = stats.get("fields", {})
    return {name: int(f["approx_distinct"]) for name, f in fields.items() if "approx_distinct" in f}
