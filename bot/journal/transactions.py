"""The pending-transaction journal the nonce manager and the sender rely on for crash recovery:
every signed transaction is written before it is sent, with its raw bytes, so a restart can find
out on chain what happened to it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

from bot.errors import Halt
from bot.journal.base import Store

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
}
TX_COLUMNS = (
    "tx_hash, sender, nonce, raw, status, what, max_fee, max_priority_fee, private, replaces, "
    "sent_block, mined_block, block_hash, unsigned, rebalance_id, covers"
)


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


class TxUpdate(TypedDict, total=False):
    """The columns `set_status` may set along with the status."""

    sent_block: int
    mined_block: int
    block_hash: str
    gas_used: int


class Transactions(Store):
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

    def set_status(self, tx_hash: str, status: TxStatus, **fields: Unpack[TxUpdate]) -> None:
        unknown = set(fields) - TxUpdate.__optional_keys__
        if unknown:  # the names go into the statement: only the table's own
            raise ValueError(f"not a column set_status writes: {', '.join(sorted(unknown))}")
        columns = "".join(f", {name} = ?" for name in fields)
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
