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
