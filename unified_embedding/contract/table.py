"""The one shared embedding table of the contract: rows, width, round-robin sub-tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from unified_embedding.contract.errors import require

# The most rows of one (sub-)table: its row indexes must fit int32, the ids TPU embedding
# lookups take, so a table trains under every strategy (the logical table of `num_tables`
# sub-tables holds that many times more). `budget.plan_budget` refuses budgets needing more.
MAX_TABLE_ROWS = 2**31 - 1
# How an export stores its table (`ue export --table-dtype`): float32, or int8 row-wise
# quantized with a float16 scale and offset per row (`layers.served_table`).
SERVED_DTYPES = ("float32", "int8")


@dataclass(frozen=True)
class TableSpec:
    """The one shared table: `rows` x `width`, split round-robin into `num_tables` sub-tables.

    Row `r` lives in sub-table `r % num_tables` at position `r // num_tables`, so sub-tables are
    equally full and shard evenly across devices or parameter servers.

    An export may serve a smaller table than it trained (`ue export --table-width/--table-dtype`):
    `served_width` (None: the trained width) keeps the first columns of every row, the rest read
    as zeros; `served_dtype` is how the rows are stored. Both are left out of the spec's JSON
    when they are the defaults, so a model trained and served whole keeps its fingerprint.
    """

    rows: int = 2**16
    width: int = 8
    num_tables: int = 1
    served_width: int | None = None
    served_dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("rows", "width", "num_tables"):
            value = getattr(self, name)
            require(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"`{name}` should be a positive integer. Received: `{name}={value!r}` (table)",
            )
        require(
            self.rows % self.num_tables == 0,
            f"`rows` should be a multiple of `num_tables`. Received: `rows={self.rows}`, "
            f"`num_tables={self.num_tables}` for the table",
        )
        require(
            self.served_width is None
            or (
                isinstance(self.served_width, int)
                and not isinstance(self.served_width, bool)
                and self.served_width >= 1
            ),
            f"`served_width` should be a positive integer or None. Received: "
            f"`served_width={self.served_width!r}` (table)",
        )
        require(
            self.served_dtype in SERVED_DTYPES,
            f"`served_dtype` should be one of {SERVED_DTYPES}. Received: "
            f"`served_dtype={self.served_dtype!r}` (table)",
        )
        require(
            self.rows // self.num_tables <= MAX_TABLE_ROWS,
            f"`rows` should be at most {MAX_TABLE_ROWS} per sub-table (int32 row indexes). "
            f"Received: `rows={self.rows}`, `num_tables={self.num_tables}` for the table",
        )

    @property
    def params(self) -> int:
        return self.rows * self.width

    @property
    def is_served_whole(self) -> bool:
        """True when an export serves the table as trained: every column, float32."""
        return self.served_width is None and self.served_dtype == "float32"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.served_width is None:
            del out["served_width"]
        if self.served_dtype == "float32":
            del out["served_dtype"]
        return out
