"""The snapshot reader: exact values, two round trips, one block, clear errors on bad data."""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from web3 import Web3

from anvil_fixtures.builder import Fixture
from anvil_fixtures.wide import add_pools
from bot.chain.anvil import AnvilProcess, rpc_call
from bot.chain.reader import SnapshotReader
from bot.chain.rpc import RpcClient, RpcRequest
from bot.errors import DataError, TemporaryError
from bot.paths import ROOT
from bot.portfolio import value_portfolio
from bot.settings import Settings, load_settings
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.helpers import contract
from tests.proxy import RpcProxy, replace_result

LOCAL = ROOT / "config" / "local.toml"


def local_settings(url: str, **changes: Any) -> Settings:
    settings = load_settings(LOCAL, rpc_url=url)
    return settings.model_copy(update=changes) if changes else settings


def client(settings: Settings, urls: list[str] | None = None, **kwargs: Any) -> RpcClient:
    return RpcClient(urls or settings.chain.rpc_urls, chain_id=settings.chain.chain_id, **kwargs)


async def test_snapshot_equals_the_chain(chain: Chain) -> None:
    settings = local_settings(chain.url)
    async with client(settings) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)
        snapshot = await reader.snapshot()
    w3 = chain.w3
    block = w3.eth.get_block("latest")
    assert (snapshot.block_number, snapshot.block_hash) == (
        block["number"],
        w3.to_hex(block["hash"]),
    )
    assert snapshot.timestamp == block["timestamp"]
    assert snapshot.base_fee == block["baseFeePerGas"]
    keeper = chain.manifest["keeper"]["address"]
    assert snapshot.eth_balance == w3.eth.get_balance(keeper)
    for symbol, raw in snapshot.balances:
        assert raw == contract(w3, chain.token(symbol), "IERC20").functions.balanceOf(keeper).call()
    for state in snapshot.pools:
        pair = contract(w3, state.pool.address, "UniswapV2Pair")
        assert (state.reserve0, state.reserve1, state.block_timestamp_last) == tuple(
            pair.functions.getReserves().call()
        )
        assert state.total_supply == pair.functions.totalSupply().call()
        assert state.k_last == pair.functions.kLast().call()
        assert state.price0_cumulative_last == pair.functions.price0CumulativeLast().call()
        assert state.price1_cumulative_last == pair.functions.price1CumulativeLast().call()
        assert state.wallet_lp == pair.functions.balanceOf(keeper).call()
        assert state.fee_on == (state.pool.venue == "sushiswap")
        assert chain.pool(state.key)["address"] == state.pool.address
    assert dict(snapshot.fee_to)["sushiswap"] == chain.manifest["venues"]["sushiswap"]["fee_to"]


async def test_twap_history_comes_from_one_window_back(chain: Chain) -> None:
    settings = local_settings(chain.url)
    # Mine past the window so the node has the state of the block one window back.
    chain.rpc("anvil_mine", hex(settings.valuation.twap_window_seconds // 12 + 5), hex(12))
    async with client(settings) as rpc:
        snapshot = await (await SnapshotReader.connect(rpc, settings)).snapshot()
    assert snapshot.history_timestamp is not None
    assert snapshot.timestamp - snapshot.history_timestamp >= settings.valuation.twap_window_seconds
    assert len(snapshot.history) == len(snapshot.pools)
    valuation = value_portfolio(snapshot, settings)
    for price in valuation.pools.values():
        # nothing traded since: the TWAP equals the spot price
        assert price.twap == pytest.approx(price.spot, rel=1e-9)
        assert price.flagged is None


# --- many pools ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wide(default_fixture: Fixture) -> Iterator[tuple[AnvilProcess, Settings]]:
    with default_fixture.start() as anvil:
        data = tomllib.loads(LOCAL.read_text())
        added = add_pools(anvil.url, default_fixture.manifest, 200 - len(data["pools"]))
        data["chain"]["rpc_urls"] = [anvil.url]
        for symbol, address in added.tokens.items():
            data["tokens"][symbol] = {"address": address, "decimals": 18}
        data["pools"] += [
            {"venue": "uniswap", "tokens": [a, b], "address": pair} for a, b, pair in added.pools
        ]
        yield anvil, Settings(**data)


async def test_200_pools_take_two_round_trips_pinned_to_one_block(
    wide: tuple[AnvilProcess, Settings], default_fixture: Fixture
) -> None:
    anvil, settings = wide
    assert len(settings.pools) == 200
    manifest = default_fixture.manifest
    keeper = manifest["keeper"]["address"]
    usdc = manifest["tokens"]["USDC"]["address"]
    mint = (
        Web3()
        .eth.contract(abi=contract(Web3(), usdc, "FixtureToken").abi)
        .encode_abi("mint", [keeper, 777])
    )
    sent: list[int] = []

    def mine_between(requests: Any) -> None:
        # Before the pinned read goes out, two new blocks land, one of them changing our balance.
        if requests[0].method == "eth_call" and not sent:
            rpc_call(
                anvil.url,
                "eth_sendTransaction",
                [{"from": manifest["deployer"], "to": usdc, "data": mint}],
            )
            rpc_call(anvil.url, "evm_mine")
            sent.append(1)

    async with client(settings, on_request=mine_between) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)
        sent.clear()
        head_before = int(rpc_call(anvil.url, "eth_blockNumber"), 16)
        before = rpc.stats.round_trips
        snapshot = await reader.snapshot()
        assert rpc.stats.round_trips - before == 2
    assert sent
    assert snapshot.block_number == head_before
    assert int(rpc_call(anvil.url, "eth_blockNumber"), 16) == head_before + 2
    held_now = int(
        rpc_call(
            anvil.url,
            "eth_call",
            [{"to": usdc, "data": "0x70a08231" + keeper[2:].rjust(64, "0").lower()}, "latest"],
        ),
        16,
    )
    assert snapshot.balance("USDC") == held_now - 777
    assert len(snapshot.pools) == 200
    assert all(state.reserve0 == state.reserve1 == 10**24 for state in snapshot.pools[12:])


# --- bad data -------------------------------------------------------------------------------------
@adversarial
async def test_an_answer_from_another_block_is_refused(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)
    settings = local_settings(chain.url)
    async with faults.escaped(), RpcProxy(chain.url) as proxy, client(settings, [proxy.url]) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)

        def unpin(batch: list[dict[str, Any]]) -> None:
            if batch[0]["method"] == "eth_call":
                chain.rpc("evm_mine")
                batch[0]["params"][1] = "latest"  # a node that ignores the pinned hash

        proxy.rewrite = unpin
        with pytest.raises(DataError, match=r"answered from block \d+ when asked for block \d+"):
            await reader.snapshot()
    watch.finish(executions=0)


@adversarial
async def test_truncated_answer_is_refused(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)
    settings = local_settings(chain.url)
    async with faults.escaped(), RpcProxy(chain.url) as proxy, client(settings, [proxy.url]) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)
        proxy.mutate = lambda batch, body: (
            replace_result(body, 0, lambda r: r[: len(r) // 2])
            if batch[0]["method"] == "eth_call"
            else None
        )
        with pytest.raises(DataError, match="malformed or truncated"):
            await reader.snapshot()
    watch.finish(executions=0)


@adversarial
async def test_garbage_and_short_batches_are_clear_errors(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)
    settings = local_settings(chain.url)
    async with faults.escaped(), RpcProxy(chain.url) as proxy, client(settings, [proxy.url]) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)
        proxy.mutate = lambda batch, body: b"<html>502 Bad Gateway</html>"
        with pytest.raises(TemporaryError, match="not JSON"):
            await reader.snapshot()
        proxy.mutate = lambda batch, body: b"[]"
        with pytest.raises(TemporaryError, match="answered 0 results to a batch of 1"):
            await reader.snapshot()
    watch.finish(executions=0)


@adversarial
async def test_reverting_balance_of_names_the_token(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)
    settings = local_settings(chain.url)
    code = chain.rpc("eth_getCode", chain.token("USDT"), "latest")
    async with faults.escaped(), client(settings) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)
        chain.rpc("anvil_setCode", chain.token("USDT"), "0x60006000fd")  # PUSH 0 PUSH 0 REVERT
        with pytest.raises(DataError, match=r"USDT\.balanceOf\(wallet\) reverted"):
            await reader.snapshot()
    chain.rpc("anvil_setCode", chain.token("USDT"), code)  # so the watch can read USDT again
    watch.finish(executions=0)


@adversarial
async def test_zero_reserve_pool_is_named(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)
    settings = local_settings(chain.url)
    pool = chain.pool("uniswap:LINK/WETH")
    chain.rpc("anvil_setStorageAt", pool["address"], hex(8), "0x" + "0" * 64)
    async with faults.escaped(), client(settings) as rpc:
        snapshot = await (await SnapshotReader.connect(rpc, settings)).snapshot()
    with (
        faults.escaped(),
        pytest.raises(
            DataError, match=rf"pool uniswap:LINK/WETH \({pool['address']}\) has a zero reserve"
        ),
    ):
        value_portfolio(snapshot, settings)
    watch.finish(executions=0)


async def test_token_without_a_priced_path_is_named(chain: Chain) -> None:
    base = local_settings(chain.url)
    settings = base.model_copy(update={"pools": [p for p in base.pools if "FOT" not in p.tokens]})
    async with client(settings) as rpc:
        snapshot = await (await SnapshotReader.connect(rpc, settings)).snapshot()
    with pytest.raises(DataError, match="token FOT has no pool path to the numeraire token USDC"):
        value_portfolio(snapshot, settings)


# --- endpoints ------------------------------------------------------------------------------------
@adversarial
async def test_falls_over_to_the_next_endpoint_and_never_logs_the_secret(
    chain: Chain, caplog: pytest.LogCaptureFixture, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = local_settings(chain.url)
    caplog.set_level(logging.DEBUG)
    async with faults.escaped(), RpcProxy(chain.url) as good:
        dead = "http://127.0.0.1:9/v2/SECRET-KEY-123"
        async with client(settings, [dead, good.url + "/v3/OTHER-SECRET"]) as rpc:
            snapshot = await (await SnapshotReader.connect(rpc, settings)).snapshot()
    assert snapshot.block_number == chain.manifest["block_number"]
    assert "127.0.0.1:9/***" in caplog.text
    assert "SECRET" not in caplog.text
    watch.finish(executions=0)


@adversarial
async def test_wrong_chain_id_and_lagging_endpoints_are_refused(
    chain: Chain, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = local_settings(chain.url)
    with (
        faults.escaped(),
        AnvilProcess(chain_id=5) as wrong,
        AnvilProcess(chain_id=31337) as behind,
    ):
        async with client(settings, [wrong.url]) as rpc:
            with pytest.raises(TemporaryError, match="is on chain id 5, but the config says 31337"):
                await rpc.call("eth_blockNumber")
        # a fresh chain at block 0 is 146 blocks behind the fixture chain
        async with client(settings, [behind.url, chain.url], max_lag_blocks=5) as rpc:
            head = await rpc.call("eth_blockNumber")
            assert int(head, 16) == chain.manifest["block_number"]  # served by the second
            assert rpc.endpoints[0].failures == 1
        async with client(settings, [behind.url, chain.url], max_lag_blocks=500) as rpc:
            assert int(await rpc.call("eth_blockNumber"), 16) == 0  # within the limit: used
    watch.finish(executions=0)


@adversarial
async def test_retry_policy_retries_transient_statuses(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)
    settings = local_settings(chain.url)
    async with faults.escaped(), RpcProxy(chain.url) as proxy:
        proxy.status = 429
        from bot.chain.rpc import RetryPolicy

        async with client(
            settings, [proxy.url], retry=RetryPolicy(attempts=3, backoff_seconds=0.01)
        ) as rpc:
            with pytest.raises(TemporaryError, match="answered HTTP 429"):
                await rpc.batch([RpcRequest("eth_blockNumber")])
        assert len(proxy.requests) == 3
    watch.finish(executions=0)
