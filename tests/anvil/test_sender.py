"""The sender on the fixture chain: simulation, nonces, drops, stuck transactions, sandwiches,
approvals, whole plans, and secrets kept out of every log."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_typing import HexStr
from eth_utils.abi import function_signature_to_4byte_selector
from web3.types import TxParams, Wei

from bot.chain.rpc import RpcClient
from bot.errors import ConfigError, FeeTooHigh, NonceTaken, SimulationReverted
from bot.execution.calls import Call, approve_data
from bot.execution.fees import Fees, check_caps, suggest_fees
from bot.execution.run import allowance, approval_calls, execute_plan
from bot.execution.sender import Sender
from bot.execution.signer import Signer, load_signer
from bot.journal import Journal
from bot.metrics import Metrics
from bot.paths import ROOT
from bot.planner import plan
from bot.settings import Settings, SignerSettings, load_settings
from bot.status import read_and_value
from bot.types import GWEI
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.helpers import automine_off, contract, send

TRANSFER = function_signature_to_4byte_selector("transfer(address,uint256)")


def settings_for(chain: Chain, **execution: Any) -> Settings:
    base = load_settings(ROOT / "config" / "local.toml", rpc_url=chain.url)
    defaults = {
        "poll_seconds": 0.05,
        "confirmations": 2,
        "stuck_blocks": 2,
        "receipt_timeout_seconds": 60,
    }
    return base.model_copy(
        update={"execution": base.execution.model_copy(update={**defaults, **execution})}
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


@contextlib.asynccontextmanager
async def sender_for(chain: Chain, journal: Journal, settings: Settings) -> AsyncIterator[Sender]:
    signer = Signer(Account.from_key(chain.manifest["keeper"]["private_key"]))
    async with RpcClient([chain.url], chain_id=31337) as rpc:
        yield Sender(rpc, signer, journal, settings.execution, 31337)


@contextlib.asynccontextmanager
async def miner(chain: Chain, every: float = 0.1) -> AsyncIterator[None]:
    """Mine a block every `every` seconds (automine is off in these tests)."""

    async def mine() -> None:
        while True:
            await asyncio.to_thread(chain.rpc, "evm_mine")
            await asyncio.sleep(every)

    task = asyncio.create_task(mine())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def transfer_call(chain: Chain, symbol: str, to: str, amount: int) -> Call:
    return Call(
        chain.token(symbol),
        TRANSFER + encode(["address", "uint256"], [to, amount]),
        f"transfer {symbol}",
    )


FEES = Fees(base_fee=10**9, max_priority_fee=GWEI, max_fee=3 * GWEI)


@adversarial
async def test_a_reverting_transaction_is_never_signed(
    chain: Chain, journal: Journal, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = settings_for(chain)
    keeper = chain.manifest["keeper"]["address"]
    nonce = chain.w3.eth.get_transaction_count(keeper)
    async with faults.escaped(), sender_for(chain, journal, settings) as sender:
        too_much = transfer_call(chain, "USDC", chain.manifest["deployer"], 10**30)
        with pytest.raises(SimulationReverted, match="transfer USDC would revert"):
            await sender.send(too_much, FEES)
        assert await sender.next_nonce() == nonce
    assert chain.w3.eth.get_transaction_count(keeper) == nonce
    assert journal.open_transactions(keeper) == []
    assert journal.highest_nonce(keeper) is None
    watch.finish(executions=0)


@adversarial
async def test_a_dropped_transaction_is_resent_as_the_same_bytes(
    chain: Chain, journal: Journal, faults: Faults
) -> None:
    watch = faults.watch(chain)
    watch.allow("USDC", -1_000)
    settings = settings_for(chain)
    deployer = chain.manifest["deployer"]
    usdc = contract(chain.w3, chain.token("USDC"), "IERC20")
    before = usdc.functions.balanceOf(deployer).call()
    with automine_off(chain):
        async with faults.escaped(), sender_for(chain, journal, settings) as sender:
            pending = await sender.send(
                transfer_call(chain, "USDC", deployer, 1_000),
                await suggest_fees(sender.rpc, settings.execution),
            )
            chain.rpc("anvil_dropTransaction", pending.tx_hash)
            assert chain.rpc("eth_getTransactionByHash", pending.tx_hash) is None
            async with miner(chain):
                mined = await sender.wait(pending)
    assert mined.tx_hash == pending.tx_hash  # the original signed bytes, not a new transaction
    assert mined.rebroadcasts >= 1
    assert mined.status == 1
    assert usdc.functions.balanceOf(deployer).call() == before + 1_000  # exactly once
    watch.finish(executions=1)


@adversarial
async def test_a_stuck_transaction_is_replaced_at_the_same_nonce(
    chain: Chain, journal: Journal, faults: Faults
) -> None:
    watch = faults.watch(chain)
    watch.allow("USDC", -777)
    settings = settings_for(chain, max_fee_gwei=10_000)
    deployer = chain.manifest["deployer"]
    keeper = chain.manifest["keeper"]["address"]
    usdc = contract(chain.w3, chain.token("USDC"), "IERC20")
    before = usdc.functions.balanceOf(deployer).call()
    with automine_off(chain):
        async with faults.escaped(), sender_for(chain, journal, settings) as sender:
            pending = await sender.send(transfer_call(chain, "USDC", deployer, 777), FEES)
            # the base fee jumps far above our max fee: the transaction cannot be included
            chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(40 * GWEI))
            async with miner(chain, every=0.05):
                mined = await sender.wait(pending)
    assert mined.replaced >= 1
    versions = journal.by_nonce(keeper, pending.nonce)
    for older, newer in itertools.pairwise(versions):
        # every attempt raised both fee fields by at least 12.5% over the one before
        assert newer.max_fee >= older.max_fee * 1.125
        assert newer.max_priority_fee >= older.max_priority_fee * 1.125
    accepted = [v for v in versions if v.status != "failed"]  # "failed": refused by the node
    assert len(accepted) == mined.replaced + 1
    statuses = [v.status for v in accepted]
    assert statuses.count("mined") == 1
    assert set(statuses) <= {"mined", "replaced"}
    assert usdc.functions.balanceOf(deployer).call() == before + 777  # executed exactly once
    watch.finish(executions=1)


@adversarial
async def test_fees_above_the_cap_wait_and_send_nothing(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)
    settings = settings_for(chain, max_fee_gwei=50, max_gas_cost=100)
    async with faults.escaped(), RpcClient([chain.url], chain_id=31337) as rpc:
        fees = await suggest_fees(rpc, settings.execution)
    assert fees.max_fee == 2 * fees.base_fee + fees.max_priority_fee
    high = Fees(base_fee=80 * GWEI, max_priority_fee=GWEI, max_fee=161 * GWEI)
    with (
        faults.escaped(),
        pytest.raises(FeeTooHigh, match=r"above execution\.max_fee_gwei 50: waiting"),
    ):
        check_caps(high, 500_000, 2_000.0, settings.execution)
    costly = Fees(base_fee=40 * GWEI, max_priority_fee=GWEI, max_fee=45 * GWEI)
    with (
        faults.escaped(),
        pytest.raises(FeeTooHigh, match=r"above execution\.max_gas_cost 100\.00: waiting"),
    ):
        check_caps(costly, 2_000_000, 2_000.0, settings.execution)
    with faults.escaped():
        check_caps(Fees(GWEI, GWEI, 3 * GWEI), 500_000, 2_000.0, settings.execution)
    watch.finish(executions=0)


@adversarial
async def test_blocks_stuffed_with_1000_gwei_tips_sign_nothing_above_the_cap(
    chain: Chain, journal: Journal, faults: Faults
) -> None:
    """The fee-cap bug: a market of 1000-gwei tips must not be paid under a 300-gwei cap."""
    watch = faults.watch(chain)
    w3 = chain.w3
    deployer = chain.manifest["deployer"]
    for _ in range(10):
        tx: TxParams = {"from": deployer, "to": deployer, "value": Wei(1), "gas": 21_000}
        tx |= {"maxPriorityFeePerGas": Wei(1000 * GWEI), "maxFeePerGas": Wei(2000 * GWEI)}
        w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))
    settings = settings_for(chain, max_fee_gwei=300)
    async with faults.escaped(), sender_for(chain, journal, settings) as sender:
        with pytest.raises(FeeTooHigh, match=r"the market needs 10\d\d\.\d gwei .* above"):
            await suggest_fees(sender.rpc, settings.execution)
        # forced through anyway (a replacement, a caller that skips suggest_fees): refused unsigned
        over = Fees(GWEI, 1000 * GWEI, 1000 * GWEI)
        with pytest.raises(FeeTooHigh, match=r"refusing to sign at max fee 1000\.0 gwei"):
            await sender.send(transfer_call(chain, "USDC", deployer, 5), over)
        with pytest.raises(FeeTooHigh, match="refusing to sign"):
            await sender.sign_bundle([(transfer_call(chain, "USDC", deployer, 5), 60_000)], over)
    assert journal.open_transactions(sender.address) == []  # nothing was signed
    assert journal.highest_nonce(sender.address) is None
    # a market under the cap: the max fee is clamped to it, the tip is kept
    roomy = settings_for(chain, max_fee_gwei=1_500)
    async with faults.escaped(), RpcClient([chain.url], chain_id=31337) as rpc:
        fees = await suggest_fees(rpc, roomy.execution)
    assert fees.max_priority_fee >= 1000 * GWEI
    assert fees.max_fee == min(2 * fees.base_fee + fees.max_priority_fee, 1_500 * GWEI)
    watch.finish(executions=0)  # the stuffing came from another account


@adversarial
async def test_a_nonce_used_by_someone_else_is_noticed(
    chain: Chain, journal: Journal, faults: Faults
) -> None:
    watch = faults.watch(chain)
    watch.allow("USDC", -5)  # ours may run, once
    watch.injected("ETH", -1)  # what the rogue transaction sends
    settings = settings_for(chain)
    keeper = chain.manifest["keeper"]["address"]
    deployer = chain.manifest["deployer"]
    with automine_off(chain):
        async with faults.escaped(), sender_for(chain, journal, settings) as sender:
            pending = await sender.send(
                transfer_call(chain, "USDC", deployer, 5),
                await suggest_fees(sender.rpc, settings.execution),
            )
            # another process with the same key spends the nonce first, with a higher tip
            rogue = Account.from_key(chain.manifest["keeper"]["private_key"]).sign_transaction(
                {
                    "type": 2,
                    "chainId": 31337,
                    "nonce": pending.nonce,
                    "to": deployer,
                    "value": 1,
                    "gas": 21_000,
                    "maxFeePerGas": 20 * GWEI,
                    "maxPriorityFeePerGas": 10 * GWEI,
                }
            )
            chain.rpc("eth_sendRawTransaction", "0x" + bytes(rogue.raw_transaction).hex())
            async with miner(chain):
                with pytest.raises(
                    NonceTaken, match=f"nonce {pending.nonce} .* was used by another transaction"
                ):
                    await sender.wait(pending)
            assert await sender.next_nonce() == pending.nonce + 1  # re-synced
    statuses = {r.status for r in journal.by_nonce(keeper, pending.nonce)}
    assert statuses == {"failed"}  # none of our versions executed, and the journal says so
    watch.finish(executions=1)  # the rogue transaction, which is the fault itself


async def test_usdt_style_approval_goes_through_zero(chain: Chain, journal: Journal) -> None:
    settings = settings_for(chain, confirmations=1)  # automine: no block comes after the last one
    keeper = chain.manifest["keeper"]["address"]
    usdt = chain.token("USDT")
    router = settings.venues["uniswap"].router
    send(chain.w3, contract(chain.w3, usdt, "IERC20").functions.approve(router, 5), keeper)
    async with sender_for(chain, journal, settings) as sender:
        calls = await approval_calls(sender.rpc, settings, keeper, {(usdt, router): 1_000})
        assert [c.what for c in calls] == ["reset USDT allowance to 0", "approve USDT"]
        assert calls[0].data == approve_data(router, 0)
        fees = await suggest_fees(sender.rpc, settings.execution)
        for call in calls:
            assert (await sender.wait(await sender.send(call, fees))).status == 1
        assert await allowance(sender.rpc, usdt, keeper, router) == 1_000
        # enough already: nothing to send
        assert await approval_calls(sender.rpc, settings, keeper, {(usdt, router): 900}) == []


@pytest.mark.parametrize(("route", "mode"), [("sequential", "wallet"), ("atomic", "wallet")])
async def test_a_whole_plan_lands_at_its_quotes(
    chain: Chain, journal: Journal, route: str, mode: str
) -> None:
    settings = settings_for(chain, confirmations=1)
    keeper = chain.manifest["keeper"]["address"]
    if route == "atomic":
        from tests.anvil.test_executor import deploy_executor

        executor = deploy_executor(chain)
        settings = settings_for(
            chain, confirmations=1, route="atomic", executor=executor, executor_mode=mode
        )
    snapshot, view = await read_and_value(settings)
    proposed = plan(
        snapshot, view, settings, {"LINK": 30_000.0, "usd": -30_000.0}, int(time.time())
    )
    pairs = {p["key"]: p["address"] for p in chain.manifest["pools"]}
    async with sender_for(chain, journal, settings) as sender:
        fees = await suggest_fees(sender.rpc, settings.execution)
        result = await execute_plan(proposed, settings, sender, fees, 200.0, pairs)
    assert all(m.status == 1 for m in result.mined)
    if route == "atomic":
        assert len(result.mined) == result.approvals + 1
    else:
        assert len(result.mined) == result.approvals + len(proposed.actions)
    _, after = await read_and_value(settings)
    for unit in after.units:
        assert unit.weight == pytest.approx(
            proposed.post_weights[unit.unit], abs=1e-6
        )  # less gas paid
    assert all(r.status == "mined" for r in journal.by_nonce(keeper, result.mined[-1].nonce))


@adversarial
async def test_a_sandwich_never_fills_below_min_out(
    chain: Chain, journal: Journal, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = settings_for(chain, confirmations=1, split_venues=False)  # one venue per swap
    keeper = chain.manifest["keeper"]["address"]
    attacker = chain.manifest["deployer"]
    snapshot, view = await read_and_value(settings)
    proposed = plan(
        snapshot, view, settings, {"LINK": 20_000.0, "usd": -20_000.0}, int(time.time())
    )
    swap = proposed.swaps[0]
    pairs = {p["key"]: p["address"] for p in chain.manifest["pools"]}
    w3 = chain.w3
    token_in = contract(w3, settings.tokens[swap.path[0]].address, "IERC20")
    router_address = settings.venues[swap.venue].router
    send(w3, token_in.functions.approve(router_address, 2**256 - 1), keeper)
    from bot.execution.calls import router_calls

    call = router_calls(proposed, settings, pairs, keeper)[0]
    watch.allow_actions([swap], settings.execution.slippage_bps)
    token_out = contract(w3, settings.tokens[swap.path[-1]].address, "IERC20")
    before = token_out.functions.balanceOf(keeper).call()
    with automine_off(chain):
        async with faults.escaped(), sender_for(chain, journal, settings) as sender:
            pending = await sender.send(call, await suggest_fees(sender.rpc, settings.execution))
            # the attacker buys the same token first, with a higher tip, in the same block
            router = contract(w3, router_address, "IUniswapV2Router02")
            weth = settings.tokens["WETH"].address
            path = [settings.tokens[s].address for s in swap.path]
            first_pool = snapshot.pool(swap.pools[0])
            reserve_in = (
                first_pool.reserve0
                if first_pool.pool.token0 == swap.path[0]
                else first_pool.reserve1
            )
            big = reserve_in // 20  # 5% of the pool: moves its price about 10%
            chain.rpc("anvil_setBalance", attacker, hex(10**30))

            def attacker_sends(tx: TxParams, tip_gwei: int = 50) -> None:
                fees: TxParams = {
                    "maxPriorityFeePerGas": Wei(tip_gwei * GWEI),
                    "maxFeePerGas": Wei(100 * GWEI),
                }
                w3.eth.send_transaction({"from": attacker, **tx, **fees})

            if swap.path[0] == "WETH":  # WETH.deposit()
                attacker_sends({"to": weth, "value": Wei(big), "data": HexStr("0xd0e30db0")})
            else:
                mint = contract(w3, path[0], "FixtureToken").encode_abi("mint", [attacker, big])
                attacker_sends({"to": path[0], "data": mint})
            approve = contract(w3, path[0], "IERC20").encode_abi(
                "approve", [router_address, 2**256 - 1]
            )
            attacker_sends({"to": path[0], "data": approve})
            trade = router.encode_abi("swapExactTokensForTokens", [big, 0, path, attacker, 2**63])
            attacker_sends({"to": router_address, "data": trade, "gas": 500_000}, tip_gwei=40)
            chain.rpc("evm_mine")
            async with miner(chain):
                mined = await sender.wait(pending)
    got = token_out.functions.balanceOf(keeper).call() - before
    if mined.status == 1:
        assert got >= swap.min_out
    else:
        assert got == 0  # reverted on minOut: nothing filled at the worse price
    assert mined.status == 0  # a front-run of 5% of the pool pushes the price past our 0.5%
    assert len(journal.by_nonce(keeper, pending.nonce)) == 1  # the bot did not chase the price
    watch.finish(executions=1)


@adversarial
async def test_secrets_never_reach_the_logs(
    chain: Chain,
    journal: Journal,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    faults: Faults,
) -> None:
    watch = faults.watch(chain)
    key = chain.manifest["keeper"]["private_key"]
    password = "correct horse battery staple 42"
    keystore = tmp_path / "keystore.json"
    keystore.write_text(json.dumps(Account.encrypt(key, password, kdf="pbkdf2", iterations=1_000)))
    monkeypatch.setenv("REBALANCER_KEYSTORE_PASSWORD", password)
    signer = load_signer(SignerSettings(keystore=keystore))
    assert signer is not None
    assert signer.address == chain.manifest["keeper"]["address"]
    assert key[2:] not in repr(signer)
    caplog.set_level(logging.DEBUG)
    settings = settings_for(chain, confirmations=1)
    snapshot, view = await read_and_value(settings)
    proposed = plan(
        snapshot, view, settings, {"LINK": 10_000.0, "usd": -10_000.0}, int(time.time())
    )
    pairs = {p["key"]: p["address"] for p in chain.manifest["pools"]}
    planned = watch.allow_actions(proposed.actions, settings.execution.slippage_bps)
    async with (
        faults.escaped(),
        RpcProxyWithSecret(chain.url) as url,
        RpcClient([url], chain_id=31337) as rpc,
    ):
        sender = Sender(rpc, signer, journal, settings.execution, 31337)
        fees = await suggest_fees(rpc, settings.execution)
        result = await execute_plan(proposed, settings, sender, fees, 200.0, pairs)
        metrics = Metrics()
        metrics.watch_rpc(rpc.stats)
        exported = metrics.render().decode()
    assert all(m.status == 1 for m in result.mined)
    assert "rebalancer_rpc_requests_total" in exported
    rows = [repr(r) for n in range(8) for r in journal.by_nonce(signer.address, n)]
    text = caplog.text + exported + "".join(rows) + repr(signer)
    for secret in (key, key[2:], password, "SUPER-SECRET-API-KEY"):
        assert secret not in text
    assert "sent swap" in text  # the run was logged
    monkeypatch.setenv("WRONG_PASSWORD", password + "x")
    with pytest.raises(ConfigError, match="could not decrypt") as excinfo:
        load_signer(SignerSettings(keystore=keystore, password_env="WRONG_PASSWORD"))
    assert password not in str(excinfo.value)
    monkeypatch.setenv("BAD_KEY", key[:-4] + "zzzz")
    with pytest.raises(ConfigError, match="BAD_KEY does not hold a valid private key") as excinfo:
        load_signer(SignerSettings(key_env="BAD_KEY"))
    assert key[2:-4] not in str(excinfo.value)
    watch.finish(executions=planned)


class RpcProxyWithSecret:
    """A proxy whose URL carries an API key in its path, as providers' URLs do."""

    def __init__(self, upstream: str) -> None:
        from tests.proxy import RpcProxy

        self.proxy = RpcProxy(upstream)

    async def __aenter__(self) -> str:
        await self.proxy.__aenter__()
        return self.proxy.url + "/v2/SUPER-SECRET-API-KEY"

    async def __aexit__(self, *exc: object) -> None:
        await self.proxy.__aexit__(*exc)


@adversarial
async def test_a_reorg_before_finality_is_followed(
    chain: Chain, journal: Journal, faults: Faults
) -> None:
    """Mined, then the chain drops those two blocks: the sender waits for the transaction's new
    inclusion (re-sending the same bytes if the pool lost it) and reports that one."""
    watch = faults.watch(chain)
    watch.allow("USDC", -4_242)
    settings = settings_for(chain, confirmations=3)
    deployer = chain.manifest["deployer"]
    usdc = contract(chain.w3, chain.token("USDC"), "IERC20")
    before = usdc.functions.balanceOf(deployer).call()
    with automine_off(chain):
        async with faults.escaped(), sender_for(chain, journal, settings) as sender:
            pending = await sender.send(
                transfer_call(chain, "USDC", deployer, 4_242),
                await suggest_fees(sender.rpc, settings.execution),
            )
            chain.rpc("evm_mine")
            assert chain.rpc("eth_getTransactionReceipt", pending.tx_hash) is not None
            for _ in range(2):  # one, then two confirmations: not final at three
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(sender.wait(pending), 0.5)
                if _ == 0:
                    chain.rpc("evm_mine")
            chain.rpc("anvil_rollback", 2)  # depth-2 reorg: the block with our transfer is gone
            assert chain.rpc("eth_getTransactionReceipt", pending.tx_hash) is None
            async with miner(chain):
                mined = await sender.wait(pending)
    assert mined.tx_hash == pending.tx_hash
    block = chain.rpc("eth_getBlockByNumber", hex(mined.block_number), False)
    assert block["hash"] == mined.block_hash  # the block it is in now, not the orphaned one
    assert usdc.functions.balanceOf(deployer).call() == before + 4_242  # exactly once
    watch.finish(executions=1)
