"""Faults injected on the fixture chain, each with the safe behaviour it must keep."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.chain.reader import SnapshotReader
from bot.chain.rpc import RpcClient, RpcRequest
from bot.errors import ConfigError, DataError, Halt, RebalancerError
from bot.journal import Journal
from bot.metrics import Metrics
from bot.paths import ROOT
from bot.settings import load_settings
from tests.conftest import Chain
from tests.evm import mapping_slot, word
from tests.faults import Faults
from tests.helpers import automine_off
from tests.keeper_helpers import LOCAL_CONFIG, keeper_settings, make_keeper, run_cli

pytestmark = pytest.mark.adversarial


def set_reserves(chain: Chain, key: str, reserve0: int, reserve1: int) -> None:
    pool = chain.pool(key)
    chain.rpc(
        "anvil_setStorageAt",
        pool["address"],
        hex(8),
        word(reserve0 | (reserve1 << 112) | (1 << 224)),
    )


async def test_a_storage_write_that_moves_spot_off_the_twap_stops_trading_through_that_pool(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    settings = keeper_settings(chain.url, tmp_path)
    chain.rpc("anvil_mine", hex(settings.valuation.twap_window_seconds // 12 + 5), hex(12))
    watch = faults.watch(chain)
    pool = chain.pool("uniswap:LINK/WETH")
    r0, r1 = int(pool["reserve0"]), int(pool["reserve1"])
    set_reserves(chain, "uniswap:LINK/WETH", r0, r1 * 3 // 2)  # a whale, or a manipulated slot
    journal = Journal(tmp_path / "j.sqlite")
    keeper_address = chain.manifest["keeper"]["address"]
    nonce = chain.w3.eth.get_transaction_count(keeper_address)
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        result = await keeper.cycle()
    assert result.status == "skipped"
    assert "price guard: uniswap:LINK/WETH" in (result.reason or "")
    assert chain.w3.eth.get_transaction_count(keeper_address) == nonce
    watch.finish(executions=0)


async def test_no_twap_with_refuse_policy_refuses(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    settings = settings.model_copy(
        update={"valuation": settings.valuation.model_copy(update={"missing_twap": "refuse"})}
    )
    journal = Journal(tmp_path / "j.sqlite")
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        result = await keeper.cycle()  # the fresh fixture chain has no state a window back
    assert result.status == "skipped"
    assert "no TWAP for this pool" in (result.reason or "")
    watch.finish(executions=0)


async def test_eth_too_low_for_gas_halts_without_a_retry_storm(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    keeper_address = chain.manifest["keeper"]["address"]
    chain.rpc("anvil_setBalance", keeper_address, hex(10**12))
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    journal = Journal(tmp_path / "j.sqlite")
    metrics = Metrics()
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, metrics, chain.manifest) as keeper,
    ):
        first = await keeper.cycle()
        second = await keeper.cycle()
    assert first.status == "failed"
    assert "top up" in (journal.get_state("halted") or "")
    assert second.status == "halted"
    assert metrics.halted._value.get() == 1
    assert chain.w3.eth.get_transaction_count(keeper_address) == 0
    watch.finish(executions=0)


async def test_a_balance_removed_before_sending_sends_nothing(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    keeper_address = chain.manifest["keeper"]["address"]
    journal = Journal(tmp_path / "j.sqlite")
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        assert keeper.reader is not None
        original = keeper.reader.snapshot

        async def then_drain() -> Any:
            snapshot = await original()
            for symbol in ("USDC", "USDT", "DAI", "WETH"):  # someone empties the wallet meanwhile
                watch.injected(symbol, -watch.balance(symbol))
                slot = mapping_slot(keeper_address, 3 if symbol == "WETH" else 0)
                chain.rpc("anvil_setStorageAt", chain.token(symbol), hex(slot), word(0))
            return snapshot

        monkeypatch.setattr(keeper.reader, "snapshot", then_drain)
        result = await keeper.cycle()
    assert result.status == "skipped"
    assert "would revert" in (result.reason or "")
    (row,) = journal.rebalances()
    # approvals may have gone out; no swap did, and no nonce was burnt by a failed send
    nonce = chain.w3.eth.get_transaction_count(keeper_address)
    mined = [
        r for n in range(nonce) for r in journal.by_nonce(keeper_address, n) if r.status == "mined"
    ]
    assert len(mined) == nonce
    assert all(r.what.startswith(("approve", "reset")) for r in mined)
    # the record follows the chain: approvals mined make it partial, with no action executed
    assert row.status == ("partial" if mined else "not_sent")
    assert all(not check["actions"] for check in row.checks or [])
    watch.finish(executions=0)  # approvals are not counted as executions


async def test_a_rebase_between_cycles_shows_in_reconcile(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    journal_path = tmp_path / "j.sqlite"
    journal = Journal(journal_path)
    async with (
        faults.escaped(),
        make_keeper(settings, "dry-run", journal, Metrics(), chain.manifest) as keeper,
    ):
        await keeper.cycle()
    journal.close()
    keeper_address = chain.manifest["keeper"]["address"]
    usdc = chain.token("USDC")
    held = int(chain.manifest["wallet"]["tokens"]["USDC"])
    watch.injected("USDC", held + 1_234_567 - watch.balance("USDC"))
    chain.rpc(
        "anvil_setStorageAt", usdc, hex(mapping_slot(keeper_address, 0)), word(held + 1_234_567)
    )  # a rebase
    result = run_cli(  # the CLI, as a user runs it
        "reconcile",
        "--config",
        str(LOCAL_CONFIG),
        "--rpc-url",
        chain.url,
        "--journal",
        str(journal_path),
        "--json",
    )
    faults.process(result.stderr)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["differences"] == {"USDC": "1234567"}
    watch.finish(executions=0)


async def test_a_locked_journal_halts_before_any_trade(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    keeper_address = chain.manifest["keeper"]["address"]
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the journal
        try:
            with pytest.raises(Halt, match="no trade without a record"):
                await keeper.cycle()
        finally:
            locker.execute("ROLLBACK")
            locker.close()
    assert chain.w3.eth.get_transaction_count(keeper_address) == 0
    watch.finish(executions=0)


# --- fuzzing ------------------------------------------------------------------------------------
LOCAL = (ROOT / "config" / "local.toml").read_text()
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(st.data())
def test_config_parsing_never_crashes(tmp_path: Path, faults: Faults, data: st.DataObject) -> None:
    faults.not_applicable("loss", "duplicates", why="a config parser: nothing reaches a chain")
    lines = LOCAL.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    replacement = data.draw(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                ["x = 1", "[chain]", "targets = {}", "decimals = -1", 'address = "0x00"', ""]
            ),
        )
    )
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join([*lines[:index], replacement, *lines[index + 1 :]]))
    with faults.fuzz(ConfigError) as refused:  # any other exception escaped, and is counted
        load_settings(path)
    if refused.error is not None:
        assert str(refused.error)  # a clear message


@pytest.fixture(scope="module")
async def reader_and_answer(anvil_chain: Chain) -> Any:
    settings = load_settings(ROOT / "config" / "local.toml", rpc_url=anvil_chain.url)
    rpc = await RpcClient([anvil_chain.url], chain_id=31337).__aenter__()
    reader = await SnapshotReader.connect(rpc, settings)
    head = await rpc.call("eth_getBlockByNumber", "latest", False)
    (answer,) = await rpc.batch([reader._request({"blockHash": head["hash"]}, full=True)])
    yield reader, answer
    await rpc.__aexit__(None, None, None)


@FUZZ
@given(st.data())
def test_reader_decoding_never_yields_a_wrong_number(
    reader_and_answer: Any, faults: Faults, data: st.DataObject
) -> None:
    faults.not_applicable("loss", "duplicates", why="decoding only: nothing is sent")
    reader, answer = reader_and_answer
    raw = bytearray(bytes.fromhex(answer[2:]))
    kind = data.draw(st.sampled_from(["truncate", "flip", "garbage"]))
    if kind == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position] ^= data.draw(st.integers(1, 255))
    else:
        raw = bytearray(data.draw(st.binary(max_size=300)))
    with faults.fuzz(DataError) as refused:
        header, words, failed = reader._words("0x" + raw.hex(), True, "fuzzed")
    if refused.error is not None:
        return  # refused, with a message: the cycle is skipped
    # anything that decodes must still be the right shape; flipped value bytes decode as
    # numbers, so the snapshot's own checks (block number, token addresses) catch them
    assert len(words) == len(reader._words(answer, True, "original")[1])
    assert isinstance(failed, list)
    assert len(header) == 5


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.sampled_from([b"[]", b"{}", b"null", b'[{"id": 1}]', b'{"jsonrpc": "2.0"}']),
    )
)
def test_rpc_answers_never_crash_the_client(faults: Faults, body: bytes) -> None:
    from bot.chain.rpc import Endpoint

    faults.not_applicable("loss", "duplicates", why="decoding only: nothing is sent")
    client = RpcClient(["http://127.0.0.1:1"], chain_id=1)
    # a clear, typed error (retried or skipped by the caller), or a result: never a crash
    with faults.fuzz(RebalancerError):
        client._decode(Endpoint("http://127.0.0.1:1"), [RpcRequest("eth_blockNumber")], [1], body)


async def test_a_transaction_signed_but_never_sent_is_not_sent_after_a_crash(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    from eth_account import Account

    from bot.execution.calls import approve_data

    watch = faults.watch(chain)
    keeper_address = chain.manifest["keeper"]["address"]
    journal = Journal(tmp_path / "j.sqlite")
    # the crash came after the journal write and before eth_sendRawTransaction
    tx = {
        "type": 2,
        "chainId": 31337,
        "nonce": 0,
        "to": chain.token("USDC"),
        "data": "0x" + approve_data(chain.manifest["deployer"], 1).hex(),
        "value": 0,
        "gas": 60_000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 10**9,
    }
    signed = Account.from_key(chain.manifest["keeper"]["private_key"]).sign_transaction(tx)
    tx_hash = "0x" + bytes(signed.hash).hex()
    journal.record_signed(
        tx_hash,
        keeper_address,
        0,
        bytes(signed.raw_transaction),
        "approve USDC",
        10**10,
        10**9,
        False,
        unsigned=tx,
    )
    settings = keeper_settings(chain.url, tmp_path)
    async with faults.escaped(), make_keeper(settings, "live", journal, Metrics(), chain.manifest):
        pass  # starting up runs the recovery
    record = journal.get(tx_hash)
    assert record is not None
    assert record.status == "failed"
    assert chain.rpc("eth_getTransactionByHash", tx_hash) is None
    assert chain.w3.eth.get_transaction_count(keeper_address) == 0
    watch.finish(executions=0)


async def test_a_passed_deadline_reverts_and_is_not_resent(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    import time as clock

    from bot.execution.calls import router_calls
    from bot.execution.fees import suggest_fees
    from bot.planner import plan
    from bot.status import read_and_value
    from tests.anvil.test_sender import miner, sender_for, settings_for

    watch = faults.watch(chain)
    settings = settings_for(chain, confirmations=1, split_venues=False)  # one venue per swap
    keeper_address = chain.manifest["keeper"]["address"]
    snapshot, view = await read_and_value(settings)
    head = int(chain.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    proposed = plan(
        snapshot, view, settings, {"LINK": 5_000.0, "usd": -5_000.0}, head
    )  # chain time
    swap = proposed.swaps[0]
    pairs = {p["key"]: p["address"] for p in chain.manifest["pools"]}
    token = chain.token(swap.path[0])
    from tests.helpers import contract, send

    send(
        chain.w3,
        contract(chain.w3, token, "IERC20").functions.approve(
            settings.venues[swap.venue].router, 2**256 - 1
        ),
        keeper_address,
    )
    call = router_calls(proposed, settings, pairs, keeper_address)[0]
    watch.allow_actions([swap], settings.execution.slippage_bps)
    journal = Journal(tmp_path / "j.sqlite")
    with automine_off(chain):
        async with faults.escaped(), sender_for(chain, journal, settings) as sender:
            pending = await sender.send(call, await suggest_fees(sender.rpc, settings.execution))
            chain.rpc(
                "evm_increaseTime", settings.execution.deadline_seconds + 600
            )  # it sat too long
            async with miner(chain):
                mined = await sender.wait(pending)
    block = chain.rpc("eth_getBlockByNumber", hex(mined.block_number), False)
    assert int(block["timestamp"], 16) > proposed.deadline, (
        int(block["timestamp"], 16),
        proposed.deadline,
    )
    assert mined.status == 0  # UniswapV2Router: EXPIRED, at no fill
    assert len(journal.by_nonce(keeper_address, pending.nonce)) == 1  # no blind resend
    # a fresh plan (new quotes, new deadline) goes through
    snapshot, view = await read_and_value(settings)
    again = plan(
        snapshot,
        view,
        settings,
        {"LINK": 5_000.0, "usd": -5_000.0},
        max(int(clock.time()), snapshot.timestamp),
    )
    watch.allow_actions(again.actions[:1], settings.execution.slippage_bps)
    async with faults.escaped(), sender_for(chain, journal, settings) as sender:
        retry = router_calls(again, settings, pairs, keeper_address)[0]
        assert (
            await sender.wait(
                await sender.send(retry, await suggest_fees(sender.rpc, settings.execution))
            )
        ).status == 1
    watch.finish(executions=1)  # the expired attempt reverted; the fresh plan ran once


async def test_two_triggers_at_once_send_one_at_a_time_in_nonce_order(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    import asyncio

    from bot.execution.fees import suggest_fees
    from tests.anvil.test_sender import sender_for, settings_for, transfer_call

    settings = settings_for(chain, confirmations=1)
    journal = Journal(tmp_path / "j.sqlite")
    deployer = chain.manifest["deployer"]
    watch = faults.watch(chain)
    symbols = ["USDC", "USDT", "DAI", "LINK", "WBTC"]
    for symbol in symbols:
        watch.allow(symbol, -1)
    async with faults.escaped(), sender_for(chain, journal, settings) as sender:
        fees = await suggest_fees(sender.rpc, settings.execution)
        sent = await asyncio.gather(
            *(sender.send(transfer_call(chain, s, deployer, 1), fees) for s in symbols)
        )
        mined = [await sender.wait(p) for p in sent]
    assert sorted(p.nonce for p in sent) == list(range(len(symbols)))
    assert all(m.status == 1 for m in mined)
    watch.finish(executions=len(symbols))


async def test_502_and_timeouts_fail_over_without_consuming_anything(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    from bot.chain.rpc import RetryPolicy
    from tests.proxy import RpcProxy

    watch = faults.watch(chain)
    settings = load_settings(ROOT / "config" / "local.toml", rpc_url=chain.url)
    async with faults.escaped(), RpcProxy(chain.url) as bad, RpcProxy(chain.url) as slow:
        bad.status = 502
        slow.delay = 2.0
        policy = RetryPolicy(attempts=2, backoff_seconds=0.01, timeout_seconds=0.5)
        async with RpcClient([bad.url, slow.url, chain.url], chain_id=31337, retry=policy) as rpc:
            reader = await SnapshotReader.connect(rpc, settings)
            snapshot = await reader.snapshot()
            failures = [e.failures for e in rpc.endpoints]
    assert snapshot.block_number == chain.manifest["block_number"]
    assert failures[0] >= 1
    assert failures[1] >= 1
    assert failures[2] == 0
    assert snapshot.balance("USDC") == int(chain.manifest["wallet"]["tokens"]["USDC"])
    watch.finish(executions=0)


async def test_gas_above_the_cap_waits_alerts_and_sends_nothing(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    settings = settings.model_copy(
        update={"execution": settings.execution.model_copy(update={"max_gas_cost": 0.0001})}
    )
    journal = Journal(tmp_path / "j.sqlite")
    metrics = Metrics()
    keeper_address = chain.manifest["keeper"]["address"]
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, metrics, chain.manifest) as keeper,
    ):
        result = await keeper.cycle()
    assert result.status == "skipped"
    assert "waiting" in (result.reason or "")
    assert metrics.gas_cap_hits._value.get() == 1
    assert journal.rebalances()[0].status == "not_sent"
    assert chain.w3.eth.get_transaction_count(keeper_address) == 0
    watch.finish(executions=0)


async def test_a_full_disk_halts_before_any_trade(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    keeper_address = chain.manifest["keeper"]["address"]
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        # SQLite's own "database or disk is full": no page may be added from here on
        pages = journal._db.execute("PRAGMA page_count").fetchone()[0]
        journal._db.execute(f"PRAGMA max_page_count = {pages}")

        async def until_a_write_fails() -> None:
            for _ in range(50):  # the first write that needs a new page fails
                await keeper.cycle()

        with pytest.raises(Halt, match="disk is full"):
            await until_a_write_fails()
    assert chain.w3.eth.get_transaction_count(keeper_address) == 0
    watch.finish(executions=0)


async def test_a_pool_with_no_trades_for_hours_is_refused_when_configured(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    settings = keeper_settings(chain.url, tmp_path)
    chain.rpc("anvil_mine", hex(settings.valuation.twap_window_seconds // 12 + 5), hex(12))
    head = int(chain.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    chain.rpc("evm_setNextBlockTimestamp", head + 2 * 3600)  # two quiet hours for every pool
    chain.rpc("evm_mine")
    watch = faults.watch(chain)
    for policy, expected in (("allow", "rebalanced"), ("refuse", "skipped")):
        configured = settings.model_copy(
            update={
                "valuation": settings.valuation.model_copy(
                    update={"stale_pool_seconds": 3600, "stale_pool": policy}
                )
            }
        )
        journal = Journal(tmp_path / f"{policy}.sqlite")
        async with (
            faults.escaped(),
            make_keeper(configured, "dry-run", journal, Metrics(), chain.manifest) as keeper,
        ):
            result = await keeper.cycle()
        assert result.status == expected, result.reason
        if policy == "refuse":
            assert "no trade for" in (result.reason or "")
    watch.finish(executions=0)  # dry-run: nothing sent
