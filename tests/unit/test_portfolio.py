"""Valuation on hand-made snapshots: paths, TWAP, guard, notional, buckets, LP and IL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.errors import DataError
from bot.portfolio import Q112, cumulative_prices, value_portfolio
from bot.settings import Settings
from bot.types import PoolObservation, Snapshot
from tests import synthetic
from tests.synthetic import DEPTH, PRICES, SETTINGS

E18 = 10**18


def snapshot(
    settings: Settings = SETTINGS, prices: dict[str, float] = PRICES, **overrides: Any
) -> Snapshot:
    """$1000 of every token and 5 ETH, pools at `prices` (tests.synthetic)."""
    return synthetic.snapshot(None, settings, prices, **{"eth_balance": 5 * E18, **overrides})


def test_prices_follow_the_deepest_path() -> None:
    valuation = value_portfolio(snapshot(), SETTINGS)
    assert valuation.prices["USDC"].spot == 1.0
    assert valuation.prices["WETH"].spot == pytest.approx(200.0, rel=1e-9)
    assert valuation.prices["WETH"].path == (
        "uniswap:USDC/WETH",
    )  # not the shallower sushiswap pool
    assert valuation.prices["LINK"].path == ("uniswap:USDC/WETH", "uniswap:LINK/WETH")
    assert valuation.prices["LINK"].spot == pytest.approx(4.0, rel=1e-9)
    assert (
        valuation.prices["ETH"].spot == valuation.prices["WETH"].spot
    )  # native ETH trades as WETH
    assert valuation.prices["WETH"].depth == pytest.approx(2 * DEPTH["uniswap"], rel=1e-9)


def test_a_deeper_pool_wins_even_through_a_longer_path() -> None:
    snap = snapshot()
    states = []
    for state in snap.pools:
        if state.key == "uniswap:USDC/WETH":  # make the direct pool tiny
            state = replace(state, reserve0=state.reserve0 // 1000, reserve1=state.reserve1 // 1000)
        states.append(state)
    valuation = value_portfolio(replace(snap, pools=tuple(states)), SETTINGS)
    # two hops through 10M pools (via USDT or DAI) beat the direct 3M sushiswap pool
    assert len(valuation.prices["WETH"].path) == 2
    assert "sushiswap:USDC/WETH" not in valuation.prices["WETH"].path
    assert valuation.prices["WETH"].depth == pytest.approx(2 * DEPTH["uniswap"], rel=1e-6)


def test_value_weights_buckets_and_drift() -> None:
    valuation = value_portfolio(snapshot(), SETTINGS)
    # 7 tokens at $1000 each plus 5 ETH at $200
    assert valuation.total_value == pytest.approx(8000.0, rel=1e-9)
    eth = valuation.unit("eth")
    assert set(eth.members) == {"WETH", "ETH"}
    assert eth.weight == pytest.approx(2000 / 8000, rel=1e-9)
    assert eth.drift_abs == pytest.approx(0.25 - 0.40, rel=1e-9)
    assert eth.drift_rel == pytest.approx((0.25 - 0.40) / 0.40, rel=1e-9)
    usd = valuation.unit("usd")
    assert usd.weight == pytest.approx(3000 / 8000, rel=1e-9)
    fot = valuation.unit("FOT")
    assert fot.target == 0.005


def test_notional_multiplier_counts_leverage() -> None:
    tokens = dict(SETTINGS.tokens)
    tokens["LINK"] = tokens["LINK"].model_copy(update={"notional": 2.0})
    settings = SETTINGS.model_copy(update={"tokens": tokens})
    valuation = value_portfolio(snapshot(settings), settings)
    link = next(a for a in valuation.assets if a.asset == "LINK")
    assert link.value == pytest.approx(1000.0, rel=1e-9)
    assert link.notional == pytest.approx(2000.0, rel=1e-9)
    assert valuation.total_notional == pytest.approx(9000.0, rel=1e-9)
    assert valuation.unit("LINK").weight == pytest.approx(2000 / 9000, rel=1e-9)


def test_twap_from_cumulative_prices_by_hand() -> None:
    # price0 = 2 raw for 50 s, then 4 raw for 50 s: the TWAP is 3.
    c0 = 2 * Q112 * 50
    assert cumulative_prices(E18, 4 * E18, 1050, c0, 0, 1100)[0] == c0 + 4 * Q112 * 50
    base = snapshot()
    target = next(s for s in base.pools if s.key == "uniswap:LINK/WETH")
    d0 = SETTINGS.tokens[target.pool.token0].decimals
    d1 = SETTINGS.tokens[target.pool.token1].decimals
    now = replace(
        target, reserve0=E18, reserve1=4 * E18, block_timestamp_last=1050, price0_cumulative_last=c0
    )
    old = PoolObservation(target.key, 1000, E18, 2 * E18, 1000, 0, 0)
    snap = replace(
        base,
        timestamp=1100,
        pools=tuple(now if s.key == target.key else s for s in base.pools),
        history=(old,),
        history_timestamp=1000,
    )
    price = value_portfolio(
        snap,
        SETTINGS.model_copy(
            update={"valuation": SETTINGS.valuation.model_copy(update={"max_twap_deviation": 0.5})}
        ),
    ).pools[target.key]
    assert price.twap == pytest.approx(3.0 * 10**d0 / 10**d1, rel=1e-12)
    assert price.spot == pytest.approx(4.0 * 10**d0 / 10**d1, rel=1e-12)
    assert price.deviation == pytest.approx(1 / 3, rel=1e-9)
    assert price.flagged is None  # within the 50% bound set above


def test_guard_flags_spot_far_from_twap_and_every_price_through_it() -> None:
    base = snapshot()
    history = tuple(
        PoolObservation(s.key, 1000, s.reserve0, s.reserve1, 1000, 0, 0) for s in base.pools
    )
    pumped = tuple(
        replace(s, reserve0=s.reserve0 * 2, block_timestamp_last=1990)
        if s.key == "uniswap:LINK/WETH"
        else s
        for s in base.pools
    )
    valuation = value_portfolio(
        replace(base, pools=pumped, history=history, history_timestamp=1000), SETTINGS
    )
    assert set(valuation.flagged_pools) == {"uniswap:LINK/WETH"}
    assert "off the TWAP" in valuation.flagged_pools["uniswap:LINK/WETH"]
    assert valuation.prices["LINK"].flagged == ("uniswap:LINK/WETH",)
    assert valuation.prices["WETH"].flagged == ()


def test_lp_position_value_and_impermanent_loss() -> None:
    base = snapshot(prices={**PRICES, "WETH": 800.0})  # every pool already at the new price
    key = "uniswap:USDC/WETH"
    state = next(s for s in base.pools if s.key == key)
    weth_is_0 = state.pool.token0 == "WETH"
    # Entry: 100 WETH + 20,000 USDC (price 200). Now WETH is 4x: constant k gives 50 / 40,000.
    now_weth, now_usdc = 50 * E18, 40_000 * 10**6
    r0, r1 = (now_weth, now_usdc) if weth_is_0 else (now_usdc, now_weth)
    supply = 10**21
    lp_state = replace(state, reserve0=r0, reserve1=r1, total_supply=supply, wallet_lp=supply)
    entry = (100 * E18, 20_000 * 10**6) if weth_is_0 else (20_000 * 10**6, 100 * E18)
    portfolio = SETTINGS.portfolio.model_copy(
        update={
            "lp_entries": [
                SETTINGS.portfolio.lp_entries[0].model_copy(
                    update={"amount0": entry[0], "amount1": entry[1]}
                )
            ]
        }
    )
    settings = SETTINGS.model_copy(update={"portfolio": portfolio})
    snap = replace(base, pools=tuple(lp_state if s.key == key else s for s in base.pools))
    valuation = value_portfolio(snap, settings)
    (position,) = valuation.lp_positions
    assert (position.amount0, position.amount1) == (r0, r1)  # the whole supply: the whole pool
    assert position.il_price_only == pytest.approx(-0.2, abs=1e-12)
    assert position.il_vs_hold == pytest.approx(-0.2, rel=1e-6)
    weth = next(a for a in valuation.assets if a.asset == "WETH")
    assert weth.in_lp == pytest.approx(50.0)


def test_protocol_fee_dilutes_lp_value() -> None:
    base = snapshot()
    key = "sushiswap:WBTC/WETH"
    state = next(s for s in base.pools if s.key == key)
    k = state.reserve0 * state.reserve1
    with_lp = replace(state, wallet_lp=10**18, k_last=k * 81 // 100)  # sqrt(k) grew ~11%
    values = []
    for fee_on in (False, True):
        snap = replace(
            base,
            pools=tuple(replace(with_lp, fee_on=fee_on) if s.key == key else s for s in base.pools),
        )
        (position,) = value_portfolio(snap, SETTINGS).lp_positions
        values.append(position.value)
    assert values[1] < values[0]
    # the pending mint is TS*(sqrtk - sqrtk_last)/(5 sqrtk + sqrtk_last) = TS * 0.1/5.9
    assert values[1] / values[0] == pytest.approx(1 / (1 + 0.1 / 5.9), rel=1e-6)


def test_zero_reserve_and_missing_path_are_data_errors() -> None:
    base = snapshot()
    broken = tuple(replace(s, reserve1=0) if s.key == "uniswap:DAI/USDC" else s for s in base.pools)
    with pytest.raises(DataError, match=r"pool uniswap:DAI/USDC .* zero reserve"):
        value_portfolio(replace(base, pools=broken), SETTINGS)
    settings = SETTINGS.model_copy(
        update={"pools": [p for p in SETTINGS.pools if "FOT" not in p.tokens]}
    )
    snap = replace(base, pools=tuple(s for s in base.pools if "FOT" not in s.key))
    with pytest.raises(DataError, match="token FOT has no pool path"):
        value_portfolio(snap, settings)
