"""The journal: SQLite in WAL mode. This part holds the pending-transaction journal the nonce
manager and the sender rely on for crash recovery: every signed transaction is written before it
is sent, with its raw bytes, so a restart can find out on chain what happened to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from bot.errors import ConfigError, Halt

TxStatus = Literal[
    "signed", "sent", "mined", "replaced", "dropped", "failed", "cancelled", "reorged"
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    tx_hash TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    raw BLOB NOT NULL,
    unsigned TEXT NOT NULL DEFAULT '{}',  -- the fields that were signed, for a replacement
    status TEXT NOT NULL,
    what TEXT NOT NULL,
    max_fee INTEGER NOT NULL,
    max_priority_fee INTEGER NOT NULL,
    private INTEGER NOT NULL DEFAULT 0,
    replaces TEXT,
    sent_block INTEGER,
    mined_block INTEGER,
    block_hash TEXT,
    gas_used INTEGER,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    rebalance_id INTEGER,                 -- the rebalance it belongs to, if any
    covers TEXT NOT NULL DEFAULT '[]'     -- JSON: the plan's action indexes it carries out
);
CREATE INDEX IF NOT EXISTS transactions_sender_nonce ON transactions (sender, nonce);
"""
# Columns added after the first release: journals created before get them on open.
MIGRATIONS = {
    "transactions": {
        "rebalance_id": "INTEGER",
        "covers": "TEXT NOT NULL DEFAULT '[]'",
    },
    "rebalances": {"prices": "TEXT", "checks": "TEXT", "loss": "REAL"},
}
TX_COLUMNS = (
    "tx_hash, sender, nonce, raw, status, what, max_fee, max_priority_fee, private, replaces, "
    "sent_block, mined_block, block_hash, unsigned, rebalance_id, covers"
)
# A rebalance's status once all its transactions are final; anything else is still open.
FINAL_REBALANCE = ("executed", "partial", "shortfall", "failed", "not_sent")


AUDIT_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS lots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    asset TEXT NOT NULL,
    amount REAL NOT NULL,          -- whole units still open
    unit_cost REAL NOT NULL,       -- numeraire per unit at acquisition
    acquired REAL NOT NULL,
    rebalance_id INTEGER
);
CREATE TABLE IF NOT EXISTS keeper_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class TxRecord:
    tx_hash: str
    sender: str
    nonce: int
    raw: bytes
    status: TxStatus
    what: str
    max_fee: int
    max_priority_fee: int
    private: bool
    replaces: str | None
    sent_block: int | None
    mined_block: int | None
    block_hash: str | None
    unsigned: dict[str, Any]
    rebalance_id: int | None = None
    covers: tuple[int, ...] = ()  # indexes of the plan's actions this transaction carries out


class Journal:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock: IO[str] | None = None
        try:
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a record must survive a crash
            self._db.executescript(SCHEMA)
            self._db.executescript(AUDIT_SCHEMA)
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

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield self._db
            self._db.execute("COMMIT")
        except sqlite3.Error as err:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise Halt(
                f"journal write failed ({err}): stopping, no trade without a record"
            ) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise

    def record_signed(
        self,
        tx_hash: str,
        sender: str,
        nonce: int,
        raw: bytes,
        what: str,
        max_fee: int,
        max_priority_fee: int,
        private: bool,
        replaces: str | None = None,
        unsigned: dict[str, Any] | None = None,
        rebalance_id: int | None = None,
        covers: tuple[int, ...] = (),
    ) -> None:
        now = time.time()
        with self._write() as db:
            # The same plan re-signed at the same nonce and fees is the same transaction, with
            # the same hash: allowed again only if its earlier copy never went anywhere.
            cursor = db.execute(
                "INSERT INTO transactions (tx_hash, sender, nonce, raw, unsigned, status, what, "
                "max_fee, max_priority_fee, private, replaces, created, updated, rebalance_id, "
                "covers) VALUES (?, ?, ?, ?, ?, 'signed', ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(tx_hash) DO UPDATE SET status = 'signed', updated = excluded.updated, "
                "rebalance_id = excluded.rebalance_id, covers = excluded.covers "
                "WHERE transactions.status IN ('dropped', 'failed')",
                (
                    tx_hash,
                    sender,
                    nonce,
                    raw,
                    json.dumps(unsigned or {}),
                    what,
                    max_fee,
                    max_priority_fee,
                    int(private),
                    replaces,
                    now,
                    now,
                    rebalance_id,
                    json.dumps(list(covers)),
                ),
            )
            if cursor.rowcount == 0:
                raise Halt(f"transaction {tx_hash} is already in flight: refusing to send it twice")

    def set_status(self, tx_hash: str, status: TxStatus, **fields: int | str | None) -> None:
        columns = "".join(f", {name} = ?" for name in fields)  # names are ours, values bound
        with self._write() as db:
            db.execute(
                f"UPDATE transactions SET status = ?, updated = ?{columns} WHERE tx_hash = ?",  # noqa: S608
                (status, time.time(), *fields.values(), tx_hash),
            )

    def _transactions(self, where: str, *params: Any) -> list[TxRecord]:
        rows = self._db.execute(
            f"SELECT {TX_COLUMNS} FROM transactions WHERE {where}",  # noqa: S608 (our clauses)
            params,
        ).fetchall()
        return [_record(row) for row in rows]

    def get(self, tx_hash: str) -> TxRecord | None:
        found = self._transactions("tx_hash = ?", tx_hash)
        return found[0] if found else None

    def open_transactions(self, sender: str) -> list[TxRecord]:
        """Signed or sent, not yet final: what a restart must look up on chain."""
        return self._transactions(
            "sender = ? AND status IN ('signed', 'sent') ORDER BY nonce, created", sender
        )

    def by_nonce(self, sender: str, nonce: int) -> list[TxRecord]:
        return self._transactions("sender = ? AND nonce = ? ORDER BY created", sender, nonce)

    def transactions_of(self, rebalance_id: int) -> list[TxRecord]:
        return self._transactions("rebalance_id = ? ORDER BY nonce, created", rebalance_id)

    def unsettled_rebalances(self) -> list[dict[str, Any]]:
        """Live rebalances whose outcome is not recorded yet (cut short, or still in flight)."""
        return self._rebalances("mode = 'live' AND status = 'started' ORDER BY id")

    def rebalance(self, rebalance_id: int) -> dict[str, Any]:
        (row,) = self._rebalances("id = ?", rebalance_id)
        return row

    def highest_nonce(self, sender: str) -> int | None:
        row = self._db.execute(
            "SELECT MAX(nonce) FROM transactions "
            "WHERE sender = ? AND status IN ('signed', 'sent', 'mined')",
            (sender,),
        ).fetchone()
        return None if row[0] is None else int(row[0])

    # --- keeper state (survives restarts) -----------------------------------------------------
    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM keeper_state WHERE key = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO keeper_state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # --- the audit log ----------------------------------------------------------------------------
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
        status: str,
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

    def record_rebalance(self, **row: Any) -> int:
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        values = [json.dumps(v) if isinstance(v, dict | list | tuple) else v for v in row.values()]
        with self._write() as db:
            cursor = db.execute(
                f"INSERT INTO rebalances ({columns}) VALUES ({marks})",  # noqa: S608 (our column names)
                values,
            )
            return int(cursor.lastrowid or 0)

    def update_rebalance(self, rebalance_id: int, **row: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in row)
        values = [json.dumps(v) if isinstance(v, dict | list | tuple) else v for v in row.values()]
        with self._write() as db:
            db.execute(
                f"UPDATE rebalances SET {assignments} WHERE id = ?",  # noqa: S608 (our column names)
                (*values, rebalance_id),
            )

    def rebalances(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        return self._rebalances("1 ORDER BY id DESC LIMIT ?", -1 if limit is None else limit)

    def _rebalances(self, where: str, *params: Any) -> list[dict[str, Any]]:
        cursor = self._db.execute(
            f"SELECT * FROM rebalances WHERE {where}",  # noqa: S608 (our clauses)
            params,
        )
        names = [c[0] for c in cursor.description]
        out = []
        for row in cursor.fetchall():
            item = dict(zip(names, row, strict=True))
            for key in (
                "pre_weights",
                "post_weights",
                "realized_weights",
                "trades",
                "quoted",
                "realized",
                "tx_hashes",
                "prices",
                "checks",
            ):
                if item.get(key):
                    item[key] = json.loads(item[key])
            out.append(item)
        return out

    def cycles(self, limit: int = 100) -> list[dict[str, Any]]:
        cursor = self._db.execute("SELECT * FROM cycles ORDER BY id DESC LIMIT ?", (limit,))
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # --- cost-basis lots ------------------------------------------------------------------------
    def open_lots(self, asset: str) -> list[tuple[int, float, float, float]]:
        """(id, amount, unit cost, acquired) of the asset's open lots, oldest first."""
        rows = self._db.execute(
            "SELECT id, amount, unit_cost, acquired FROM lots WHERE asset = ? AND amount > 0 "
            "ORDER BY acquired, id",
            (asset,),
        ).fetchall()
        return [(int(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in rows]

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


def _record(row: Any) -> TxRecord:
    (
        tx_hash,
        sender,
        nonce,
        raw,
        status,
        what,
        max_fee,
        tip,
        private,
        replaces,
        sent,
        mined,
        block,
        unsigned,
        rebalance_id,
        covers,
    ) = row
    return TxRecord(
        tx_hash=tx_hash,
        sender=sender,
        nonce=nonce,
        raw=bytes(raw),
        status=status,
        what=what,
        max_fee=max_fee,
        max_priority_fee=tip,
        private=bool(private),
        replaces=replaces,
        sent_block=sent,
        mined_block=mined,
        block_hash=block,
        unsigned=json.loads(unsigned),
        rebalance_id=rebalance_id,
        covers=tuple(json.loads(covers)),
    )
