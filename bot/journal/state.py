"""Keeper state that survives restarts: text values under a fixed set of keys."""

from __future__ import annotations

from typing import Literal, overload

from bot.journal.base import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS keeper_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

StateKey = Literal[
    "halted",  # why the circuit breaker stopped trading; absent: not halted
    "consecutive_failures",  # failed cycles in a row, an integer
    "strategy_state",  # JSON: the strategy's StrategyState (last rebalance, turnover, history)
    "expected_holdings",  # JSON: {"block": N, "holdings": name -> raw}, for `reconcile`
    "paper_holdings",  # JSON: name -> raw, paper mode's virtual portfolio
    "loss_day",  # the UTC day (unix days) loss_today counts
    "loss_today",  # costs, shortfalls and gas charged to the daily loss cap that day
]


class KeeperState(Store):
    @overload
    def get_state(self, key: StateKey, default: str) -> str: ...
    @overload
    def get_state(self, key: StateKey, default: None = None) -> str | None: ...
    def get_state(self, key: StateKey, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM keeper_state WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_state(self, key: StateKey, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO keeper_state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def clear_state(self, key: StateKey) -> None:
        """Forget the key: `get_state` gives its default again."""
        with self._write() as db:
            db.execute("DELETE FROM keeper_state WHERE key = ?", (key,))
