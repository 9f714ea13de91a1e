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


@dataclass(frozen=True)
class TableSpec:
    """The one shared table: `rows` x `width`, split round-robin into `num_tables` sub-tables.

    Row `r` lives in sub-table `r % num_tables` at position `r // num_tables`, so sub-tables are
    equally full and shard evenly across devices or parameter servers.
    """

    rows: int = 2**16
    width: int = 8
    num_tables: int = 1

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
            self.rows // self.num_tables <= MAX_TABLE_ROWS,
            f"`rows` should be at most {MAX_TABLE_ROWS} per sub-table (int32 row indexes). "
            f"Received: `rows={self.rows}`, `num_tables={self.num_tables}` for the table",
        )

    @property
    def params(self) -> int:
        return self.rows * self.width

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
