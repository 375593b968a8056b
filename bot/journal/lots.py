"""Cost-basis lots: what each holding cost, lot by lot, for the gain a sale realizes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot.journal.base import Store

if TYPE_CHECKING:
    from bot.lots import Lot

SCHEMA = """
CREATE TABLE IF NOT EXISTS lots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asset TEXT NOT NULL,
    amount REAL NOT NULL,          -- whole units still open
    unit_cost REAL NOT NULL,       -- numeraire per unit at acquisition
    acquired REAL NOT NULL,
    rebalance_id INTEGER
);
"""


class Lots(Store):
    def open_lots(self, asset: str) -> list[Lot]:
        """The asset's open lots, oldest first."""
        from bot.lots import Lot  # here: bot.lots brings the planner, which the journal need not

        rows = self._db.execute(
            "SELECT id, amount, unit_cost, acquired FROM lots WHERE asset = ? AND amount > 0 "
            "ORDER BY acquired, id",
            (asset,),
        ).fetchall()
        return [Lot(int(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in rows]

    def add_lot(
        self, asset: str, amount: float, unit_cost: float, rebalance_id: int | None
    ) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO lots (asset, amount, unit_cost, acquired, rebalance_id) "
                "VALUES (?, ?, ?, ?, ?)",
                (asset, amount, unit_cost, time.time(), rebalance_id),
            )

    def reduce_lot(self, lot_id: int, amount: float) -> None:
        with self._write() as db:
            db.execute("UPDATE lots SET amount = amount - ? WHERE id = ?", (amount, lot_id))

    def has_lots(self) -> bool:
        return self._db.execute("SELECT 1 FROM lots LIMIT 1").fetchone() is not None
