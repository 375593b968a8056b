"""The audit log: a row per keeper cycle, and a row per rebalance that says what was planned,
what it cost and, once its transactions are final, what it did."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypedDict, Unpack

from bot.journal.base import Store, decoded, encoded

CycleStatus = Literal["running", "rebalanced", "skipped", "failed", "halted"]
RebalanceStatus = Literal[
    "started",
    "executed",
    "partial",
    "shortfall",
    "failed",
    "not_sent",
    "waiting_gas",
    "simulated",
    "paper",
]
# A rebalance's status once all its transactions are final; anything else is still open.
FINAL_REBALANCE: tuple[RebalanceStatus, ...] = (
    "executed",
    "partial",
    "shortfall",
    "failed",
    "not_sent",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS cycles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    block INTEGER,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,          -- running | rebalanced | skipped | failed | halted
    reason TEXT,
    value REAL,
    weights TEXT,                  -- JSON: unit -> weight
    duration REAL
);
CREATE TABLE IF NOT EXISTS rebalances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cycle_id INTEGER NOT NULL REFERENCES cycles(id),
    time REAL NOT NULL,
    block INTEGER NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,          -- started | executed | partial | shortfall | failed
                                   -- | not_sent | waiting_gas | simulated | paper
    reason TEXT NOT NULL,
    pre_weights TEXT NOT NULL,     -- JSON
    post_weights TEXT NOT NULL,    -- JSON: expected after the plan
    realized_weights TEXT,         -- JSON: read back after execution
    trades TEXT NOT NULL,          -- JSON: the plan's actions
    quoted TEXT NOT NULL,          -- JSON: name -> raw change the plan quoted
    realized TEXT,                 -- JSON: name -> raw change on chain
    value_before REAL NOT NULL,
    value_after REAL,
    turnover REAL NOT NULL,
    fee_cost REAL NOT NULL,
    impact_cost REAL NOT NULL,
    gas_cost REAL NOT NULL,
    gas_used INTEGER,
    gas_cost_wei TEXT,
    realized_gain REAL,
    tx_hashes TEXT,                -- JSON list
    prices TEXT,                   -- JSON: token -> numeraire price the plan was valued at
    checks TEXT,                   -- JSON: post-trade verification, action by action
    loss REAL                      -- charged to the daily loss cap: costs, shortfall, gas
);
"""
# Columns added after the first release: journals created before get them on open.
MIGRATIONS = {"rebalances": {"prices": "TEXT", "checks": "TEXT", "loss": "REAL"}}


@dataclass(frozen=True, slots=True)
class CycleRecord:
    """A `cycles` row. A row left `running` is a cycle a crash cut short."""

    id: int
    time: float
    block: int | None
    mode: str
    status: CycleStatus
    reason: str | None
    value: float | None
    weights: dict[str, float] | None  # unit -> weight
    duration: float | None


@dataclass(frozen=True, slots=True)
class RebalanceRecord:
    """A `rebalances` row, its JSON columns decoded. Raw token amounts are decimal strings."""

    id: int
    cycle_id: int
    time: float
    block: int
    mode: str
    status: RebalanceStatus
    reason: str
    pre_weights: dict[str, float]  # unit -> weight
    post_weights: dict[str, float]  # expected after the plan
    realized_weights: dict[str, float] | None  # read back after execution
    trades: list[dict[str, Any]]  # the plan's actions
    quoted: dict[str, str]  # name -> raw change the plan quoted
    realized: dict[str, str] | None  # name -> raw change on chain
    value_before: float
    value_after: float | None
    turnover: float
    fee_cost: float
    impact_cost: float
    gas_cost: float
    gas_used: int | None
    gas_cost_wei: str | None
    realized_gain: float | None
    tx_hashes: list[str] | None
    prices: dict[str, float] | None  # token -> numeraire price the plan was valued at
    checks: list[dict[str, Any]] | None  # post-trade verification, action by action
    loss: float | None  # charged to the daily loss cap: costs, shortfall, gas

    def as_dict(self) -> dict[str, Any]:
        """Column -> value, in the table's order (what `rebalancer history` prints)."""
        return asdict(self)


class RebalanceUpdate(TypedDict, total=False):
    """The columns a rebalance's row gets after it is recorded: any of them, at any time."""

    status: RebalanceStatus
    realized_weights: dict[str, float]
    realized: dict[str, str]
    value_after: float
    gas_used: int
    gas_cost_wei: str
    realized_gain: float
    tx_hashes: list[str]
    checks: list[dict[str, Any]]
    loss: float


CYCLE_COLUMNS = ", ".join(f.name for f in fields(CycleRecord))
REBALANCE_COLUMNS = ", ".join(f.name for f in fields(RebalanceRecord))
# The columns that hold JSON text (the schema's `-- JSON`), decoded as they are read.
JSON_COLUMNS = frozenset(
    {
        "weights",
        "pre_weights",
        "post_weights",
        "realized_weights",
        "trades",
        "quoted",
        "realized",
        "tx_hashes",
        "prices",
        "checks",
    }
)


class AuditLog(Store):
    def start_cycle(self, mode: str) -> int:
        """A cycle's row, written as it starts so its rebalance can point at it. A row left
        `running` is a cycle a crash cut short."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO cycles (time, mode, status) VALUES (?, ?, 'running')",
                (time.time(), mode),
            )
            return int(cursor.lastrowid or 0)

    def record_cycle(
        self,
        cycle_id: int,
        status: CycleStatus,
        reason: str | None,
        block: int | None,
        value: float | None,
        weights: dict[str, float] | None,
        duration: float,
    ) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE cycles SET block = ?, status = ?, reason = ?, value = ?, weights = ?, "
                "duration = ? WHERE id = ?",
                (block, status, reason, value, json.dumps(weights), duration, cycle_id),
            )

    def cycles(self, limit: int = 100) -> list[CycleRecord]:
        """Newest first."""
        rows = self._select("cycles", CYCLE_COLUMNS, "1 ORDER BY id DESC LIMIT ?", limit)
        return [CycleRecord(**row) for row in rows]

    def record_rebalance(
        self,
        *,
        cycle_id: int,
        time: float,
        block: int,
        mode: str,
        status: RebalanceStatus,
        reason: str,
        pre_weights: dict[str, float],
        post_weights: dict[str, float],
        trades: list[dict[str, Any]],
        quoted: dict[str, str],
        value_before: float,
        turnover: float,
        fee_cost: float,
        impact_cost: float,
        gas_cost: float,
        prices: dict[str, float] | None = None,
    ) -> int:
        """A rebalance's row, written before anything is sent; returns its id."""
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO rebalances (cycle_id, time, block, mode, status, reason, "
                "pre_weights, post_weights, trades, quoted, value_before, turnover, fee_cost, "
                "impact_cost, gas_cost, prices) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    cycle_id,
                    time,
                    block,
                    mode,
                    status,
                    reason,
                    encoded(pre_weights),
                    encoded(post_weights),
                    encoded(trades),
                    encoded(quoted),
                    value_before,
                    turnover,
                    fee_cost,
                    impact_cost,
                    gas_cost,
                    encoded(prices),
                ),
            )
            return int(cursor.lastrowid or 0)

    def update_rebalance(self, rebalance_id: int, **row: Unpack[RebalanceUpdate]) -> None:
        unknown = set(row) - RebalanceUpdate.__optional_keys__
        if unknown:  # the names go into the statement: only the table's own
            raise ValueError(f"not a rebalance column to update: {', '.join(sorted(unknown))}")
        assignments = ", ".join(f"{name} = ?" for name in row)
        with self._write() as db:
            db.execute(
                f"UPDATE rebalances SET {assignments} WHERE id = ?",  # noqa: S608 (our column names)
                (*(encoded(v) for v in row.values()), rebalance_id),
            )

    def rebalances(self, limit: int | None = None) -> list[RebalanceRecord]:
        """Newest first."""
        return self._rebalances("1 ORDER BY id DESC LIMIT ?", -1 if limit is None else limit)

    def rebalance(self, rebalance_id: int) -> RebalanceRecord:
        (row,) = self._rebalances("id = ?", rebalance_id)
        return row

    def unsettled_rebalances(self) -> list[RebalanceRecord]:
        """Live rebalances whose outcome is not recorded yet (cut short, or still in flight)."""
        return self._rebalances("mode = 'live' AND status = 'started' ORDER BY id")

    def _rebalances(self, where: str, *params: Any) -> list[RebalanceRecord]:
        rows = self._select("rebalances", REBALANCE_COLUMNS, where, *params)
        return [RebalanceRecord(**row) for row in rows]

    def _select(self, table: str, columns: str, where: str, *params: Any) -> list[dict[str, Any]]:
        """Column -> value of each row, JSON columns decoded."""
        cursor = self._db.execute(
            f"SELECT {columns} FROM {table} WHERE {where}",  # noqa: S608 (our names and clauses)
            params,
        )
        names = [c[0] for c in cursor.description]
        return [
            {
                name: decoded(value) if name in JSON_COLUMNS else value
                for name, value in zip(names, row, strict=True)
            }
            for row in cursor.fetchall()
        ]
