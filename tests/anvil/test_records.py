"""Rebalance records follow the chain: status, lots, loss, turnover and cooldown are charged for
what was mined, however the rebalance ended; an action with no effect halts the keeper."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from bot.errors import TemporaryError
from bot.execution.calls import Call
from bot.execution.fees import Fees
from bot.execution.pending import Pending
from bot.journal import Journal
from bot.metrics import Metrics
from bot.settings import Settings
from bot.types import Snapshot
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.keeper_helpers import LOCAL_CONFIG, keeper_settings, make_keeper, run_cli

pytestmark = adversarial


def strategy_state(journal: Journal) -> dict[str, Any]:
    return dict(json.loads(journal.get_state("strategy_state") or "{}"))


def with_router(settings: Settings, venue: str, router: str) -> Settings:
    venues = dict(settings.venues)
    venues[venue] = venues[venue].model_copy(update={"router": router})
    return settings.model_copy(update={"venues": venues})


async def test_a_router_address_with_no_code_halts_on_the_first_rebalance(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)  # nothing may leave the wallet but gas: no router took anything
    settings = keeper_settings(chain.url, tmp_path)
    for venue, spec in settings.venues.items():
        real = spec.router
        typo = Web3.to_checksum_address(real[:-1] + ("0" if real[-1] != "0" else "1"))
        assert chain.w3.eth.get_code(typo) == b""
        settings = with_router(settings, venue, typo)
    journal = Journal(tmp_path / "j.sqlite")
    keeper_address = chain.manifest["keeper"]["address"]
    balances_before = {
        s: chain.w3.eth.call(
            {"to": chain.token(s), "data": "0x70a08231" + keeper_address[2:].lower().rjust(64, "0")}
        )
        for s in ("LINK", "USDC")
    }
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        first = await keeper.cycle()
        second = await keeper.cycle()
    assert first.status == "failed"
    assert "had no effect" in (first.reason or "")
    assert second.status == "halted"
    halted = journal.get_state("halted") or ""
    assert "had no effect" in halted
    assert "check the router and pool addresses" in halted
    (row,) = journal.rebalances()
    assert row.status == "shortfall"
    assert row.checks is not None
    assert any(not c["ok"] and c["realized"] == "0" for c in row.checks)
    # the wallet did not move (approvals aside), and the journal says so
    for symbol, raw in balances_before.items():
        data = "0x70a08231" + keeper_address[2:].lower().rjust(64, "0")
        assert chain.w3.eth.call({"to": chain.token(symbol), "data": data}) == raw
    # reconcile shows what the plan quoted and the chain does not have
    journal.close()
    done = await asyncio.to_thread(
        run_cli,
        "reconcile",
        "--config",
        str(LOCAL_CONFIG),
        "--rpc-url",
        chain.url,
        "--journal",
        str(tmp_path / "j.sqlite"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    differences = json.loads(done.stdout)["differences"]
    quoted = {k: int(v) for k, v in row.quoted.items()}
    bought = [name for name, change in quoted.items() if change > 0]
    assert bought
    for name in bought:
        assert int(differences[name]) == -quoted[name]
    watch.finish(executions=len(row.trades))  # the calls "succeeded" once each, no more


async def test_a_plan_cut_short_is_partial_and_charged_for_what_was_mined(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    journal = Journal(tmp_path / "j.sqlite")
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        assert keeper.sender is not None
        send = keeper.sender.send
        actions_sent = 0

        async def node_dies_after_two_actions(
            call: Call, fees: Fees, value: int = 0, rebalance_id: int | None = None
        ) -> Pending:
            nonlocal actions_sent
            if call.covers:
                if actions_sent == 2:
                    raise TemporaryError("the node went away")
                actions_sent += 1
            return await send(call, fees, value, rebalance_id)

        monkeypatch.setattr(keeper.sender, "send", node_dies_after_two_actions)
        result = await keeper.cycle()
    assert result.status == "failed"
    (row,) = journal.rebalances()
    assert len(row.trades) > 2
    assert row.status == "partial"
    assert row.checks is not None
    assert row.gas_cost_wei is not None
    assert row.prices is not None
    executed = sorted({i for c in row.checks for i in c["actions"]})
    assert executed == [0, 1]
    assert all(c["ok"] for c in row.checks)
    # charged: gas paid on chain, plus the quoted costs of the two swaps that executed
    gas_wei = int(row.gas_cost_wei)
    assert gas_wei > 0
    trades = row.trades
    costs = sum(float(t["fee_cost"]) + float(t["impact_cost"]) for t in trades[:2])
    eth = row.prices["ETH"]
    assert row.loss == pytest.approx(costs + gas_wei / 1e18 * eth)
    assert float(journal.get_state("loss_today") or 0) == pytest.approx(row.loss)
    # lots for the two swaps only
    bought = {t["path"][-1] for t in trades[:2]}
    assert {asset for asset in bought if journal.open_lots(asset)} == bought
    # cooldown and turnover count the part that executed
    state = strategy_state(journal)
    assert state["last_rebalance"] is not None
    share = sum(float(t["value_in"]) for t in trades[:2]) / sum(
        float(t["value_in"]) for t in trades if t["kind"] == "swap"
    )
    assert state["turnover_today"] == pytest.approx(row.turnover * share)
    watch.allow_journal(journal, settings.execution.slippage_bps)
    watch.finish(executions=2)


async def test_a_failed_read_after_the_trade_still_records_it_executed(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    journal = Journal(tmp_path / "j.sqlite")
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        assert keeper.reader is not None
        read = keeper.reader.snapshot
        reads = 0

        async def second_read_fails() -> Snapshot:
            nonlocal reads
            reads += 1
            if reads == 2:
                raise TemporaryError("the node went away")
            return await read()

        monkeypatch.setattr(keeper.reader, "snapshot", second_read_fails)
        result = await keeper.cycle()
    assert result.status == "rebalanced", result.reason
    (row,) = journal.rebalances()
    assert row.status == "executed"
    assert row.realized is None  # not read: the record says so instead of guessing
    assert row.checks is not None
    assert all(c["ok"] for c in row.checks)
    assert float(journal.get_state("loss_today") or 0) > 0
    actions = watch.allow_journal(journal, settings.execution.slippage_bps)
    watch.finish(executions=actions)
