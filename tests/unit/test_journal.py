"""The pending-transaction journal refuses to record a transaction twice while it is in flight."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import Halt
from bot.journal import Journal


def test_the_same_transaction_again_only_after_it_went_nowhere(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    args = ("0xabc", "0xSender", 7, b"raw", "swap", 10, 1, True)
    journal.record_signed(*args)
    journal.set_status("0xabc", "sent", sent_block=5)
    with pytest.raises(Halt, match="already in flight"):
        journal.record_signed(*args)
    journal.set_status("0xabc", "dropped")
    journal.record_signed(*args)  # the same bytes may go out again: it never executed
    record = journal.get("0xabc")
    assert record is not None
    assert record.status == "signed"
    assert [r.tx_hash for r in journal.open_transactions("0xSender")] == ["0xabc"]
    journal.close()


def test_an_unwritable_journal_halts(tmp_path: Path) -> None:
    with pytest.raises(Halt, match="no trade without a record"):
        Journal(tmp_path / "missing-dir" / "j.sqlite")


def test_a_journal_from_before_the_settlement_columns_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    Journal(path).close()
    # the journal as the first release wrote it: without the columns added since
    with sqlite3.connect(path) as db:
        for table, column in (
            ("transactions", "rebalance_id"),
            ("transactions", "covers"),
            ("rebalances", "prices"),
            ("rebalances", "checks"),
            ("rebalances", "loss"),
        ):
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute(
            "INSERT INTO transactions (tx_hash, sender, nonce, raw, status, what, max_fee, "
            "max_priority_fee, created, updated) VALUES ('0xold', '0xS', 0, x'00', 'mined', "
            "'swap', 1, 1, 0, 0)"
        )
    journal = Journal(path)
    record = journal.get("0xold")
    assert record is not None
    assert (record.rebalance_id, record.covers) == (None, ())
    journal.record_signed("0xnew", "0xS", 1, b"r", "swap", 1, 1, False, rebalance_id=4, covers=(2,))
    assert [(r.tx_hash, r.covers) for r in journal.transactions_of(4)] == [("0xnew", (2,))]
    journal.close()
