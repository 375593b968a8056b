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


def test_rows_come_back_typed_with_their_json_decoded(tmp_path: Path) -> None:
    from bot.journal import CycleRecord, RebalanceRecord
    from bot.lots import Lot

    journal = Journal(tmp_path / "j.sqlite")
    cycle_id = journal.start_cycle("live")
    rebalance_id = journal.record_rebalance(
        cycle_id=cycle_id,
        time=5,
        block=7,
        mode="live",
        status="started",
        reason="band breached",
        pre_weights={"eth": 0.6, "usd": 0.4},
        post_weights={"eth": 0.5, "usd": 0.5},
        trades=[{"kind": "swap", "amount_in": "10"}],
        quoted={"WETH": "-10", "USDC": "20"},
        value_before=100.0,
        turnover=10.0,
        fee_cost=0.3,
        impact_cost=0.1,
        gas_cost=0.2,
        prices={"ETH": 2000.0},
    )
    (started,) = journal.unsettled_rebalances()
    assert isinstance(started, RebalanceRecord)
    assert (started.id, started.cycle_id, started.time, started.status) == (
        rebalance_id,
        cycle_id,
        5.0,
        "started",
    )
    assert started.trades == [{"kind": "swap", "amount_in": "10"}]
    assert (started.realized, started.checks, started.loss) == (None, None, None)
    journal.update_rebalance(
        rebalance_id,
        status="executed",
        realized={"WETH": "-10", "USDC": "19"},
        checks=[{"tx": "0x1", "actions": [0], "ok": True}],
        tx_hashes=["0x1"],
        gas_used=21_000,
        gas_cost_wei="42",
        loss=0.7,
    )
    settled = journal.rebalance(rebalance_id)
    assert journal.unsettled_rebalances() == []
    assert (settled.status, settled.realized, settled.tx_hashes, settled.gas_used) == (
        "executed",
        {"WETH": "-10", "USDC": "19"},
        ["0x1"],
        21_000,
    )
    assert list(settled.as_dict())[:3] == ["id", "cycle_id", "time"]  # the table's order
    assert journal.rebalances() == [settled]
    journal.record_cycle(cycle_id, "rebalanced", "band breached", 7, 100.0, {"eth": 0.5}, 1.5)
    (cycle,) = journal.cycles()
    assert cycle == CycleRecord(
        cycle_id, cycle.time, 7, "live", "rebalanced", "band breached", 100.0, {"eth": 0.5}, 1.5
    )
    journal.add_lot("WETH", 2.0, 1500.0, rebalance_id)
    (lot,) = journal.open_lots("WETH")
    assert isinstance(lot, Lot)
    assert (lot.amount, lot.unit_cost) == (2.0, 1500.0)
    journal.close()


def test_a_column_that_is_not_the_tables_is_refused(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    with pytest.raises(ValueError, match="statuss"):
        journal.update_rebalance(1, statuss="executed")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="mined"):
        journal.set_status("0xabc", "mined", mined=3)  # type: ignore[call-arg]
    journal.close()


def test_a_state_key_is_cleared(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.set_state("halted", "3 consecutive failed cycles")
    journal.clear_state("halted")
    journal.clear_state("halted")  # nothing there: nothing to do
    assert journal.get_state("halted") is None
    assert journal.get_state("consecutive_failures", "0") == "0"
    journal.close()
