"""The journal: one SQLite file in WAL mode, written before anything is sent and read back after a
crash. `Journal` opens it; each table's rows and methods live in their own module:

- `transactions` (transactions.py): the pending-transaction journal the nonce manager and the
  sender rely on for crash recovery: every signed transaction, raw bytes included, written before
  it is sent, so a restart can find out on chain what happened to it; typed as `TxRecord`.
- `cycles` and `rebalances` (audit.py): the audit log, a `CycleRecord` per keeper cycle and a
  `RebalanceRecord` per rebalance (plan, quotes, costs, and once final: what it did and lost).
- `lots` (lots.py): cost-basis lots, read as `bot.lots.Lot`.
- `keeper_state` (state.py): what the keeper keeps across restarts, under the `StateKey`s.

Columns added after the first release (`MIGRATIONS`) are added to older journals on open.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path
from typing import IO

from bot.errors import ConfigError, Halt
from bot.journal import audit, lots, state, transactions
from bot.journal.audit import (
    FINAL_REBALANCE,
    AuditLog,
    CycleRecord,
    CycleStatus,
    RebalanceRecord,
    RebalanceStatus,
    RebalanceUpdate,
)
from bot.journal.lots import Lots
from bot.journal.state import KeeperState, StateKey
from bot.journal.transactions import Transactions, TxRecord, TxStatus, TxUpdate

__all__ = [
    "FINAL_REBALANCE",
    "CycleRecord",
    "CycleStatus",
    "Journal",
    "RebalanceRecord",
    "RebalanceStatus",
    "RebalanceUpdate",
    "StateKey",
    "TxRecord",
    "TxStatus",
    "TxUpdate",
]

SCHEMAS = (transactions.SCHEMA, audit.SCHEMA, lots.SCHEMA, state.SCHEMA)
MIGRATIONS = {**transactions.MIGRATIONS, **audit.MIGRATIONS}


class Journal(Transactions, AuditLog, Lots, KeeperState):
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock: IO[str] | None = None
        try:
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a record must survive a crash
            for schema in SCHEMAS:
                self._db.executescript(schema)
            self._migrate()
        except sqlite3.Error as err:
            raise Halt(
                f"journal {self.path} cannot be opened ({err}): no trade without a record"
            ) from None

    def _migrate(self) -> None:
        for table, columns in MIGRATIONS.items():
            have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self.release()
        self._db.close()

    def hold_exclusively(self) -> None:
        """One keeper per journal: an advisory lock on `<journal>.lock`, held until `release`.

        The kernel drops it when the process dies, kill -9 included, so no stale lock is left.
        Readers (`history`, `reconcile`, `resume`) never take it: SQLite's WAL lets them in.
        """
        if self._lock is not None:
            return
        handle = open(self.path.with_name(self.path.name + ".lock"), "a+")  # noqa: SIM115 (held)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ConfigError(
                f"journal {self.path} is in use by another keeper ({holder}): one keeper per "
                "journal; stop that one, or give this one its own keeper.journal"
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None
