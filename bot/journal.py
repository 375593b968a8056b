"""The journal: SQLite in WAL mode. This part holds the pending-transaction journal the nonce
manager and the sender rely on for crash recovery: every signed transaction is written before it
is sent, with its raw bytes, so a restart can find out on chain what happened to it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.errors import Halt

TxStatus = Literal[
    "signed", "sent", "mined", "replaced", "dropped", "failed", "cancelled", "reorged"
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    tx_hash TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    raw BLOB NOT NULL,
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
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_sender_nonce ON transactions (sender, nonce);
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


class Journal:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a record must survive a crash
            self._db.executescript(SCHEMA)
        except sqlite3.Error as err:
            raise Halt(
                f"journal {self.path} cannot be opened ({err}): no trade without a record"
            ) from None

    def close(self) -> None:
        self._db.close()

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
    ) -> None:
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO transactions (tx_hash, sender, nonce, raw, status, what, max_fee, "
                "max_priority_fee, private, replaces, created, updated) "
                "VALUES (?, ?, ?, ?, 'signed', ?, ?, ?, ?, ?, ?, ?)",
                (
                    tx_hash,
                    sender,
                    nonce,
                    raw,
                    what,
                    max_fee,
                    max_priority_fee,
                    int(private),
                    replaces,
                    now,
                    now,
                ),
            )

    def set_status(self, tx_hash: str, status: TxStatus, **fields: int | str | None) -> None:
        columns = "".join(f", {name} = ?" for name in fields)  # names are ours, values bound
        with self._write() as db:
            db.execute(
                f"UPDATE transactions SET status = ?, updated = ?{columns} WHERE tx_hash = ?",  # noqa: S608
                (status, time.time(), *fields.values(), tx_hash),
            )

    def get(self, tx_hash: str) -> TxRecord | None:
        row = self._db.execute(
            "SELECT tx_hash, sender, nonce, raw, status, what, max_fee, max_priority_fee, private, "
            "replaces, sent_block, mined_block, block_hash FROM transactions WHERE tx_hash = ?",
            (tx_hash,),
        ).fetchone()
        return _record(row) if row else None

    def open_transactions(self, sender: str) -> list[TxRecord]:
        """Signed or sent, not yet final: what a restart must look up on chain."""
        rows = self._db.execute(
            "SELECT tx_hash, sender, nonce, raw, status, what, max_fee, max_priority_fee, private, "
            "replaces, sent_block, mined_block, block_hash FROM transactions "
            "WHERE sender = ? AND status IN ('signed', 'sent') ORDER BY nonce, created",
            (sender,),
        ).fetchall()
        return [_record(row) for row in rows]

    def by_nonce(self, sender: str, nonce: int) -> list[TxRecord]:
        rows = self._db.execute(
            "SELECT tx_hash, sender, nonce, raw, status, what, max_fee, max_priority_fee, private, "
            "replaces, sent_block, mined_block, block_hash FROM transactions "
            "WHERE sender = ? AND nonce = ? ORDER BY created",
            (sender, nonce),
        ).fetchall()
        return [_record(row) for row in rows]

    def highest_nonce(self, sender: str) -> int | None:
        row = self._db.execute(
            "SELECT MAX(nonce) FROM transactions "
            "WHERE sender = ? AND status IN ('signed', 'sent', 'mined')",
            (sender,),
        ).fetchone()
        return None if row[0] is None else int(row[0])


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
    )
