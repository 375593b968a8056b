"""Pre-trade guards (bot/guards.py): each passes and refuses on hand-made inputs, with the
messages the keeper records."""

from __future__ import annotations

import pytest

from bot.errors import FeeTooHigh
from bot.execution.fees import Fees, check_caps
from bot.guards import daily_loss, fee_caps, gas_balance, price_guard
from bot.portfolio import PoolPrice, Valuation
from bot.settings import Settings
from bot.types import GWEI, NATIVE, Plan, Swap
from tests.synthetic import SETTINGS, snapshot

ETH = 10**18
WALLET = SETTINGS.wallet.address


def swap(*pools: str) -> Swap:
    return Swap(
        venue="uniswap",
        path=("LINK", "WETH", "USDC")[: len(pools) + 1],
        pools=pools,
        amount_in=10**18,
        expected_out=10**18,
        min_out=10**18,
        fee_on_transfer=False,
        gas=121_407,
        value_in=4.0,
        fee_cost=0.01,
        impact_cost=0.0,
    )


def plan(*actions: Swap, gas: int = 200_000) -> Plan:
    return Plan(
        block_number=100,
        deadline=2_000,
        actions=actions,
        gas=gas,
        gas_price_wei=GWEI,
        fee_cost=0.0,
        impact_cost=0.0,
        gas_cost=0.0,
        post_weights={},
        post_value=0.0,
    )


def valuation(flagged: dict[str, str | None]) -> Valuation:
    pools = {key: PoolPrice(key, 1.0, 1.0, 0.0, why) for key, why in flagged.items()}
    return Valuation(100, 2_000, "USD", 0.0, 0.0, {}, pools, (), (), ())


def with_execution(**changes: object) -> Settings:
    return SETTINGS.model_copy(update={"execution": SETTINGS.execution.model_copy(update=changes)})


# --- the price guard ------------------------------------------------------------------------
def test_the_price_guard_passes_a_plan_through_unflagged_pools() -> None:
    view = valuation({"uniswap:LINK/WETH": None, "uniswap:USDC/WETH": None})
    assert price_guard(plan(swap("uniswap:LINK/WETH", "uniswap:USDC/WETH")), view) is None


def test_the_price_guard_passes_a_flagged_pool_the_plan_does_not_swap_through() -> None:
    view = valuation({"uniswap:LINK/WETH": None, "sushiswap:LINK/WETH": "spot 30.0% off the TWAP"})
    assert price_guard(plan(swap("uniswap:LINK/WETH")), view) is None


def test_the_price_guard_refuses_the_first_flagged_pool_the_plan_swaps_through() -> None:
    view = valuation(
        {
            "uniswap:USDC/WETH": "no TWAP for this pool (valuation.missing_twap = refuse)",
            "uniswap:LINK/WETH": "spot 30.0% off the TWAP",
        }
    )
    refused = price_guard(plan(swap("uniswap:LINK/WETH", "uniswap:USDC/WETH")), view)
    # both are flagged; the first by key is named
    assert refused == (
        "price guard: uniswap:LINK/WETH: spot 30.0% off the TWAP; not trading through it"
    )


def test_the_price_guard_passes_a_plan_with_no_swaps() -> None:
    view = valuation({"uniswap:LINK/WETH": "spot 30.0% off the TWAP"})
    assert price_guard(plan(), view) is None


# --- the daily loss cap ---------------------------------------------------------------------
def test_the_daily_loss_cap_passes_below_the_cap() -> None:
    assert daily_loss(0.0, 10.0) is None
    assert daily_loss(9.99, 10.0) is None


def test_the_daily_loss_cap_refuses_at_and_above_the_cap() -> None:
    assert daily_loss(10.0, 10.0) == (
        "today's trading costs and shortfalls reached 10.00, the daily loss cap 10.00"
    )
    assert daily_loss(12_345.678, 5_000.0) == (
        "today's trading costs and shortfalls reached 12,345.68, the daily loss cap 5,000.00"
    )


# --- ETH for gas ----------------------------------------------------------------------------
# 200,000 gas at a max fee of 50 gwei: up to 200,000 x 50e9 = 1e16 wei = 0.01 ETH.
MAX_FEE = 50 * GWEI
NEEDED = 10**16


def test_the_gas_check_passes_when_the_wallet_holds_exactly_what_gas_may_cost() -> None:
    state = snapshot(eth_balance=NEEDED)
    assert gas_balance(plan(gas=200_000), MAX_FEE, state, False, SETTINGS) is None


def test_the_gas_check_refuses_a_wallet_short_of_it() -> None:
    state = snapshot(eth_balance=9 * 10**15)  # 0.009 ETH
    assert gas_balance(plan(gas=200_000), MAX_FEE, state, False, SETTINGS) == (
        "the wallet holds 0.009000 ETH, the plan's gas needs up to 0.010000 ETH: "
        f"top up {WALLET}, then `rebalancer resume`"
    )
    one_wei_short = snapshot(eth_balance=NEEDED - 1)
    assert gas_balance(plan(gas=200_000), MAX_FEE, one_wei_short, False, SETTINGS) is not None


def test_in_vault_mode_the_gas_check_reads_the_wallets_eth_not_the_vaults() -> None:
    # the vault (snapshot.eth_balance) is rich, the paying wallet (other holdings) is not
    poor_wallet = snapshot(eth_balance=ETH, other_holdings=((NATIVE, 0),))
    refused = gas_balance(plan(gas=200_000), MAX_FEE, poor_wallet, True, SETTINGS)
    assert refused is not None
    assert refused.startswith("the wallet holds 0.000000 ETH, the plan's gas needs up to 0.010000")
    rich_wallet = snapshot(eth_balance=0, other_holdings=((NATIVE, NEEDED),))
    assert gas_balance(plan(gas=200_000), MAX_FEE, rich_wallet, True, SETTINGS) is None


def test_the_gas_check_does_not_apply_to_a_plan_sent_through_a_relay() -> None:
    relayed = with_execution(relay_url="http://127.0.0.1:1")
    assert gas_balance(plan(gas=200_000), MAX_FEE, snapshot(eth_balance=0), False, relayed) is None


# --- fee caps -------------------------------------------------------------------------------
CAPPED = with_execution(max_fee_gwei=50, max_gas_cost=100).execution


def test_the_fee_caps_pass_a_base_fee_at_the_cap_and_a_gas_cost_at_the_cap() -> None:
    # 1,000,000 gas x 50 gwei = 0.05 ETH, x 2,000 = 100.00: at the cap, not above it
    fees = Fees(50 * GWEI, GWEI, 50 * GWEI)
    assert fee_caps(fees, 1_000_000, 2_000.0, CAPPED) is None


def test_the_fee_caps_refuse_a_base_fee_above_the_cap() -> None:
    fees = Fees(60 * GWEI, GWEI, 50 * GWEI)
    assert fee_caps(fees, 21_000, 2_000.0, CAPPED) == (
        "base fee 60.0 gwei is above execution.max_fee_gwei 50: waiting"
    )


def test_the_fee_caps_refuse_a_gas_cost_above_the_cap() -> None:
    # 1,000,001 gas x 50 gwei = 0.05000005 ETH, x 2,000 = 100.0001: above 100
    fees = Fees(20 * GWEI, GWEI, 50 * GWEI)
    assert fee_caps(fees, 1_000_001, 2_000.0, CAPPED) == (
        "gas for this rebalance could cost 100.00, above execution.max_gas_cost 100.00: waiting"
    )


def test_check_caps_raises_the_fee_caps_refusal_as_fee_too_high() -> None:
    fees = Fees(60 * GWEI, GWEI, 50 * GWEI)
    with pytest.raises(FeeTooHigh, match=r"^base fee 60\.0 gwei is above"):
        check_caps(fees, 21_000, 2_000.0, CAPPED)
    check_caps(Fees(50 * GWEI, GWEI, 50 * GWEI), 1_000_000, 2_000.0, CAPPED)  # passes
