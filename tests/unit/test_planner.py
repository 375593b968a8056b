"""The planner on hand-made snapshots: routes, splits, limits, LP actions, costs, the cost gate."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from bot import amm
from bot.decide import evaluate
from bot.planner import plan, split_amounts, split_output
from bot.portfolio import value_portfolio
from bot.types import AddLiquidity, RemoveLiquidity, Snapshot, Swap
from strategies import StrategyState
from tests.synthetic import SETTINGS, snapshot, weights_portfolio, with_strategy

LOOSE = {
    "min_trade_value": 0.0,
    "min_trade_fraction": 0.0,
    "deadband": 0.0,
    "cooldown_seconds": 0,
    "trigger": "threshold",
}
NOW = 1_700_000_000

pool = st.tuples(
    st.integers(10**12, 10**27), st.integers(10**12, 10**27), st.sampled_from([30, 30, 25, 5])
)


@settings(max_examples=2_000, deadline=None)
@given(st.integers(10**9, 10**26), st.lists(pool, min_size=2, max_size=3))
def test_split_is_never_worse_than_the_best_single_venue(
    amount: int, pools: list[tuple[int, int, int]]
) -> None:
    inputs, out = split_output(amount, pools)
    assert sum(inputs) == amount
    best_single = max(amm.get_amount_out(amount, a, b, f) for a, b, f in pools)
    assert out >= best_single


@settings(max_examples=500, deadline=None)
@given(st.integers(10**12, 10**24), pool, pool)
def test_two_venue_split_matches_a_numerical_optimum(
    amount: int, first: tuple[int, int, int], second: tuple[int, int, int]
) -> None:
    (a1, b1, f1), (a2, b2, f2) = first, second
    g1, g2 = (10_000 - f1) / 10_000, (10_000 - f2) / 10_000

    total_in = float(amount)

    def total(x: float) -> float:
        y = total_in - x
        return -(g1 * x * b1 / (a1 + g1 * x) + g2 * y * b2 / (a2 + g2 * y))

    best = minimize_scalar(
        total, bounds=(0.0, total_in), method="bounded", options={"xatol": 1e-12 * total_in}
    )
    optimum = max(-best.fun, -total(0.0), -total(total_in))
    inputs = split_amounts(amount, [first, second])
    ours = -total(float(inputs[0]))
    assert ours >= optimum * (1 - 1e-9)


def test_split_follows_reserves_for_equal_prices() -> None:
    inputs = split_amounts(10**20, [(10**24, 10**24, 30), (3 * 10**24, 3 * 10**24, 30)])
    assert inputs[1] / inputs[0] == pytest.approx(3.0, rel=1e-6)


def test_plan_quotes_chain_exactly_and_moves_toward_targets() -> None:
    settings_ = with_strategy(**LOOSE)
    snap = snapshot(
        weights_portfolio({"eth": 0.50, "usd": 0.20, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.005})
    )
    view = value_portfolio(snap, settings_)
    evaluation = evaluate(snap, view, settings_, StrategyState(), NOW)
    assert evaluation.rebalance
    proposed = evaluation.plan
    assert proposed is not None
    assert proposed.deadline == NOW + settings_.execution.deadline_seconds
    # Replay every swap against the reserves as the previous ones left them.
    reserves = {s.key: (s.reserve0, s.reserve1, s.pool) for s in snap.pools}
    for action in proposed.actions:
        assert isinstance(action, Swap)
        amount = action.amount_in
        for (a, _), key in zip(
            zip(action.path, action.path[1:], strict=False), action.pools, strict=True
        ):
            r0, r1, p = reserves[key]
            if a == p.token0:
                out = amm.get_amount_out(amount, r0, r1)
                reserves[key] = (r0 + amount, r1 - out, p)
            else:
                out = amm.get_amount_out(amount, r1, r0)
                reserves[key] = (r0 - out, r1 + amount, p)
            amount = out
        assert amount == action.expected_out
        assert action.min_out == action.expected_out * (10_000 - 50) // 10_000
        assert action.fee_cost > 0
        assert action.impact_cost >= 0
    for unit in view.units:
        # post-trade weights are valued at post-trade pool prices, which the trades moved a little
        assert abs(proposed.post_weights[unit.unit] - unit.target) <= abs(unit.drift_abs) + 1e-3
    assert abs(proposed.post_weights["eth"] - 0.40) < 0.001
    assert proposed.total_cost == pytest.approx(
        proposed.fee_cost + proposed.impact_cost + proposed.gas_cost
    )
    assert proposed.gas == sum(a.gas for a in proposed.actions)


def test_a_large_trade_splits_across_venues() -> None:
    settings_ = with_strategy(**LOOSE)
    snap = snapshot(
        weights_portfolio(
            {"eth": 0.70, "usd": 0.0, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.005}, total=2_000_000.0
        )
    )
    view = value_portfolio(snap, settings_)
    decision_plan = evaluate(snap, view, settings_, StrategyState(), NOW).plan
    assert decision_plan is not None
    venues = {a.venue for a in decision_plan.swaps if a.path == ("WETH", "USDC")}
    assert venues == {"uniswap", "sushiswap"}


def test_price_impact_cap_cuts_a_trade() -> None:
    caps = SETTINGS.strategy.caps.model_copy(update={"max_price_impact_bps": 5})
    settings_ = with_strategy(caps=caps, **LOOSE)
    snap = snapshot(
        weights_portfolio(
            {"eth": 0.70, "usd": 0.0, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.005}, total=2_000_000.0
        )
    )
    view = value_portfolio(snap, settings_)
    proposed = plan(snap, view, settings_, {"eth": -600_000.0, "usd": 600_000.0}, NOW)
    assert any("price impact" in note for note in proposed.notes)
    for action in proposed.swaps:
        assert action.impact_cost / action.value_in <= 5 / 10_000 + 1e-6


def test_lp_over_target_is_removed_and_under_target_is_zapped() -> None:
    base = snapshot()
    key = "uniswap:USDC/WETH"
    state = next(s for s in base.pools if s.key == key)
    snap = replace(
        base,
        pools=tuple(
            replace(s, wallet_lp=s.total_supply // 10_000) if s.key == key else s
            for s in base.pools
        ),
    )
    # The LP holds 1/10,000 of a $20M pool: $2,000 of a $9,000 wallet (22%).
    over = SETTINGS.model_copy(
        update={"portfolio": SETTINGS.portfolio.model_copy(update={"lp_targets": {key: 0.05}})}
    )
    view = value_portfolio(snap, over)
    proposed = plan(snap, view, over, {}, NOW)
    (remove,) = proposed.actions
    assert isinstance(remove, RemoveLiquidity)
    expected = amm.lp_underlying(
        remove.liquidity, state.reserve0, state.reserve1, state.total_supply
    )
    assert (remove.expected0, remove.expected1) == expected
    lp_weight = (
        next(
            p.value
            for p in value_portfolio(_after(snap, remove.liquidity, key, -1), over).lp_positions
        )
        / view.total_value
    )
    assert lp_weight == pytest.approx(0.05, rel=1e-3)

    under = SETTINGS.model_copy(
        update={"portfolio": SETTINGS.portfolio.model_copy(update={"lp_targets": {key: 0.40}})}
    )
    proposed = plan(snap, value_portfolio(snap, under), under, {}, NOW)
    zap, add = proposed.actions
    assert isinstance(zap, Swap)
    assert zap.pools == (key,)
    assert isinstance(add, AddLiquidity)
    # the zap leaves almost nothing unused
    taken = add.amount0 if zap.path[0] == state.pool.token0 else add.amount1
    desired = add.amount0_desired if zap.path[0] == state.pool.token0 else add.amount1_desired
    assert desired - taken <= max(2, desired // 10**6)


def _after(snap: Snapshot, liquidity: int, key: str, sign: int) -> Snapshot:
    return replace(
        snap,
        pools=tuple(
            replace(s, wallet_lp=s.wallet_lp + sign * liquidity) if s.key == key else s
            for s in snap.pools
        ),
    )


@pytest.mark.parametrize(("gwei", "passes"), [(500, False), (5, True)])
def test_cost_gate_rejects_a_small_rebalance_at_high_gas(gwei: int, passes: bool) -> None:
    settings_ = with_strategy(**LOOSE)
    holdings = weights_portfolio(
        {"eth": 0.60, "usd": 0.10, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.005}, total=150.0
    )
    snap = snapshot(holdings, base_fee=gwei * 10**9)
    view = value_portfolio(snap, settings_)
    evaluation = evaluate(snap, view, settings_, StrategyState(), NOW)
    assert evaluation.decision.act
    assert evaluation.gate is not None
    assert evaluation.gate.passed is passes
    assert evaluation.rebalance is passes
    if not passes:
        assert evaluation.skip_reason == "cost_gate"
        assert evaluation.gate.cost > evaluation.gate.benefit
