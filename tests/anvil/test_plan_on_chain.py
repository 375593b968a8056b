"""Plans executed through Router02 on the fixture chain deliver exactly what they quoted."""

from __future__ import annotations

import json
import time
from typing import Any

from web3 import Web3

from bot.decide import evaluate
from bot.paths import ROOT
from bot.planner import plan
from bot.settings import Settings, load_settings
from bot.status import read_and_value
from bot.types import AddLiquidity, Plan, RemoveLiquidity, Swap
from strategies import StrategyState
from tests.conftest import Chain
from tests.helpers import MAX_UINT, contract, send
from tests.keeper_helpers import LOCAL_CONFIG, run_cli


def settings_for(chain: Chain, **portfolio: Any) -> Settings:
    settings = load_settings(ROOT / "config" / "local.toml", rpc_url=chain.url)
    if portfolio:
        settings = settings.model_copy(
            update={"portfolio": settings.portfolio.model_copy(update=portfolio)}
        )
    return settings


def execute(chain: Chain, settings: Settings, proposed: Plan) -> list[Any]:
    """Send every action through the venue's Router02 as the keeper; return what each delivered."""
    w3 = chain.w3
    keeper = chain.manifest["keeper"]["address"]
    results: list[Any] = []
    approved: set[tuple[str, str]] = set()

    def approve(token: Any, spender: str) -> None:
        # once per token and router: the USDT-style token refuses a non-zero to non-zero change
        if (token.address, spender) not in approved:
            send(w3, token.functions.approve(spender, MAX_UINT), keeper)
            approved.add((token.address, spender))

    for action in proposed.actions:
        router = contract(w3, settings.venues[action.venue].router, "IUniswapV2Router02")
        if isinstance(action, Swap):
            path = [settings.tokens[s].address for s in action.path]
            token_in = contract(w3, path[0], "IERC20")
            token_out = contract(w3, path[-1], "IERC20")
            approve(token_in, router.address)
            before = token_out.functions.balanceOf(keeper).call()
            swap = (
                router.functions.swapExactTokensForTokensSupportingFeeOnTransferTokens
                if action.fee_on_transfer
                else router.functions.swapExactTokensForTokens
            )
            send(
                w3, swap(action.amount_in, action.min_out, path, keeper, proposed.deadline), keeper
            )
            results.append(token_out.functions.balanceOf(keeper).call() - before)
        elif isinstance(action, RemoveLiquidity):
            pool = chain.pool(action.pool)
            pair = contract(w3, pool["address"], "UniswapV2Pair")
            approve(pair, router.address)
            call = router.functions.removeLiquidity(
                chain.token(pool["token0"]),
                chain.token(pool["token1"]),
                action.liquidity,
                action.min0,
                action.min1,
                keeper,
                proposed.deadline,
            )
            results.append(tuple(call.call({"from": keeper})))
            send(w3, call, keeper)
        else:
            assert isinstance(action, AddLiquidity)
            pool = chain.pool(action.pool)
            for symbol in (pool["token0"], pool["token1"]):
                send(
                    w3,
                    contract(w3, chain.token(symbol), "IERC20").functions.approve(
                        router.address, MAX_UINT
                    ),
                    keeper,
                )
            call = router.functions.addLiquidity(
                chain.token(pool["token0"]),
                chain.token(pool["token1"]),
                action.amount0_desired,
                action.amount1_desired,
                action.min0,
                action.min1,
                keeper,
                proposed.deadline,
            )
            results.append(tuple(call.call({"from": keeper})))
            send(w3, call, keeper)
    return results


async def test_the_fixture_rebalance_delivers_its_quotes(chain: Chain) -> None:
    settings = settings_for(chain)
    snapshot, view = await read_and_value(settings)
    evaluation = evaluate(snapshot, view, settings, StrategyState(), int(time.time()))
    assert evaluation.rebalance
    proposed = evaluation.plan
    assert proposed is not None
    assert len(proposed.swaps) >= 4
    assert {a.venue for a in proposed.swaps} == {"uniswap", "sushiswap"}
    assert proposed.swaps == proposed.actions  # swaps only: each delivers its expected_out
    delivered = execute(chain, settings, proposed)
    assert delivered == [a.expected_out for a in proposed.swaps]
    # and the wallet now sits where the plan said it would (less the ETH the test paid in gas)
    _, after = await read_and_value(settings)
    for unit in after.units:
        assert abs(unit.weight - proposed.post_weights[unit.unit]) < 1e-6


async def test_fee_on_transfer_token_is_quoted_by_balance_delta(chain: Chain) -> None:
    settings = settings_for(chain)
    snapshot, view = await read_and_value(settings)
    proposed = plan(snapshot, view, settings, {"FOT": -3_000.0, "usd": 3_000.0}, int(time.time()))
    first = proposed.swaps[0]
    assert first.path[0] == "FOT"
    assert first.fee_on_transfer
    assert all(not s.fee_on_transfer for s in proposed.swaps[1:])
    assert execute(chain, settings, proposed) == [s.expected_out for s in proposed.swaps]


async def test_lp_removal_and_zap_deliver_their_quotes(chain: Chain) -> None:
    remove = settings_for(
        chain, lp_targets={"uniswap:USDC/WETH": 0.02, "sushiswap:WBTC/WETH": 0.20}
    )
    snapshot, view = await read_and_value(remove)
    proposed = plan(snapshot, view, remove, {}, int(time.time()))
    kinds = [a.kind for a in proposed.actions]
    assert kinds == ["remove_liquidity", "swap", "add_liquidity"]
    delivered = execute(chain, remove, proposed)
    removal, zap, add = proposed.actions
    assert isinstance(removal, RemoveLiquidity)
    assert isinstance(zap, Swap)
    assert isinstance(add, AddLiquidity)
    assert delivered[0] == (removal.expected0, removal.expected1)
    assert delivered[1] == zap.expected_out
    assert delivered[2] == (add.amount0, add.amount1, add.expected_liquidity)
    # the zap leaves at most 1e-6 of the deposit unused
    pool = chain.pool(add.pool)
    zapped_is_0 = zap.path[0] == pool["token0"]
    deposit = zap.amount_in + (add.amount0_desired if zapped_is_0 else add.amount1_desired)
    unused = (
        (add.amount0_desired - add.amount0) if zapped_is_0 else (add.amount1_desired - add.amount1)
    )
    other_unused = (
        (add.amount1_desired - add.amount1) if zapped_is_0 else (add.amount0_desired - add.amount0)
    )
    assert unused <= deposit // 10**6
    assert other_unused <= zap.expected_out // 10**6


def test_plan_command_sends_nothing(chain: Chain) -> None:
    w3 = chain.w3
    keeper = chain.manifest["keeper"]["address"]
    block, nonce = w3.eth.block_number, w3.eth.get_transaction_count(keeper)
    result = run_cli("plan", "--config", str(LOCAL_CONFIG), "--rpc-url", chain.url, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["decision"]["rebalance"] is True
    assert report["decision"]["breaches"][0]["unit"] == "LINK"
    assert report["gate"]["passed"] is True
    assert {a["kind"] for a in report["plan"]["actions"]} == {"swap"}
    assert report["plan"]["costs"]["total"] > 0
    assert (w3.eth.block_number, w3.eth.get_transaction_count(keeper)) == (block, nonce)
    table = run_cli("plan", "--config", str(LOCAL_CONFIG), "--rpc-url", chain.url)
    assert "REBALANCE" in table.stdout
    assert "band breached: LINK" in table.stdout
    assert Web3.is_address(keeper)
