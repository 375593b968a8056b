"""The full backtest: the live strategies and planner, day by day, over simulated pools.

Each day every pool is arbitraged to that day's prices (the exact optimal trade, fee included),
so LP positions earn the arbitrageurs' fees and bear impermanent loss as on chain. The wallet is
a Snapshot like the keeper's; `bot.decide.evaluate` decides and plans exactly as live, and a
rebalance leaves the wallet and pools where the plan's exact quotes say. Gas is paid in WETH at
`backtest.gas_gwei` (or `stress_gas_gwei` inside the stress windows).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time

from bot import amm
from bot.decide import evaluate
from bot.errors import ConfigError
from bot.portfolio import value_portfolio
from bot.prices import PriceTable, price_matrix
from bot.settings import Settings
from bot.types import BPS, GWEI, Address, Pool, PoolState, Snapshot, to_raw
from strategies.base import DAY, StrategyState
from strategies.state import observation, observe

STRESS_WINDOWS = {
    "March 2020": (date(2020, 3, 1), date(2020, 3, 31)),
    "May 2021": (date(2021, 5, 1), date(2021, 5, 31)),
    "May 2022": (date(2022, 5, 1), date(2022, 5, 31)),
    "November 2022": (date(2022, 11, 1), date(2022, 11, 30)),
}


def in_stress(day: date) -> str | None:
    for name, (start, end) in STRESS_WINDOWS.items():
        if start <= day <= end:
            return name
    return None


@dataclass
class BacktestResult:
    name: str
    dates: list[date]
    values: list[float]
    weights: dict[str, list[float]]
    targets: dict[str, float]
    bands: dict[str, float]
    events: list[int] = field(default_factory=list)  # day indices with a rebalance
    fee_cost: list[float] = field(default_factory=list)  # cumulative, per day
    impact_cost: list[float] = field(default_factory=list)
    gas_cost: list[float] = field(default_factory=list)
    turnover: float = 0.0
    lp_il: dict[str, float] = field(default_factory=dict)  # LP value / holding its entry, minus 1

    def summary(self) -> dict[str, object]:
        values = self.values
        returns = [b / a - 1 for a, b in itertools.pairwise(values) if a > 0]
        mean = sum(returns) / len(returns) if returns else 0.0
        variance = sum((r - mean) ** 2 for r in returns) / max(len(returns) - 1, 1)
        peak, drawdown = values[0], 0.0
        for value in values:
            peak = max(peak, value)
            drawdown = max(drawdown, 1 - value / peak)
        squares = [
            (self.weights[u][i] - self.targets[u]) ** 2
            for u in self.weights
            for i in range(len(values))
        ]
        years = max((self.dates[-1] - self.dates[0]).days / 365.25, 1e-9)
        by_regime: dict[str, int] = {}
        for index in self.events:
            regime = in_stress(self.dates[index]) or "calm"
            by_regime[regime] = by_regime.get(regime, 0) + 1
        stress_days = sum(1 for d in self.dates if in_stress(d))
        calm_days = len(self.dates) - stress_days
        stress_rate = (
            sum(v for k, v in by_regime.items() if k != "calm") / stress_days * 30
            if stress_days
            else None
        )
        calm_rate = by_regime.get("calm", 0) / calm_days * 30 if calm_days else None
        return {
            "name": self.name,
            "from": self.dates[0].isoformat(),
            "to": self.dates[-1].isoformat(),
            "initial_value": values[0],
            "final_value": values[-1],
            "return": values[-1] / values[0] - 1,
            "annualised_return": (values[-1] / values[0]) ** (1 / years) - 1,
            "volatility": math.sqrt(variance) * math.sqrt(365),
            "max_drawdown": drawdown,
            "tracking_error": math.sqrt(sum(squares) / len(squares)) if squares else 0.0,
            "turnover": self.turnover,
            "rebalances": len(self.events),
            "costs": {
                "fees": self.fee_cost[-1] if self.fee_cost else 0.0,
                "impact": self.impact_cost[-1] if self.impact_cost else 0.0,
                "gas": self.gas_cost[-1] if self.gas_cost else 0.0,
            },
            "rebalances_by_regime": by_regime,
            "events_per_30_days": {"stress": stress_rate, "calm": calm_rate},
            "lp_impermanent_loss": self.lp_il,
        }


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


class SimulatedMarket:
    """Constant-product pools following external prices through arbitrage."""

    def __init__(self, settings: Settings, prices: dict[str, float]) -> None:
        self.settings = settings
        self.states: dict[str, PoolState] = {}
        backtest = settings.backtest
        for index, spec in enumerate(settings.pools):
            a, b = spec.tokens
            a_first = int(settings.tokens[a].address, 16) < int(settings.tokens[b].address, 16)
            token0, token1 = (a, b) if a_first else (b, a)
            depth = backtest.pool_depth_overrides.get(spec.key, backtest.pool_depth_usd)
            r0 = self._raw(token0, depth, prices)
            r1 = self._raw(token1, depth, prices)
            pool = Pool(
                spec.key,
                spec.venue,
                Address(f"0x{index + 1:040x}"),
                token0,
                token1,
                settings.venues[spec.venue].fee_bps,
                Address("0x" + "0" * 40),
            )
            supply = math.isqrt(r0 * r1)
            self.states[spec.key] = PoolState(pool, r0, r1, 0, supply, 0, 0, 0, False, 0)

    def _raw(self, symbol: str, usd: float, prices: dict[str, float]) -> int:
        return to_raw(usd / prices[symbol], self.settings.tokens[symbol].decimals)

    def arbitrage(self, prices: dict[str, float]) -> None:
        """Each pool takes the arbitrageur's optimal trade toward the external price."""
        for key, state in self.states.items():
            self.states[key] = arbitraged(state, prices, self.settings)


def arbitraged(state: PoolState, prices: dict[str, float], settings: Settings) -> PoolState:
    """The pool after the profit-maximising trade against external `prices` (fee included).

    Selling token0 in, the arbitrageur stops where the marginal output gamma*r0*r1/(r0+gamma*x)^2
    equals the external price P (token1 per token0, raw): x = (sqrt(gamma*r0*r1/P) - r0)/gamma.
    """
    pool = state.pool
    p = prices[pool.token0] / prices[pool.token1] * 10 ** settings.tokens[pool.token1].decimals
    p /= 10 ** settings.tokens[pool.token0].decimals
    gamma = (BPS - pool.fee_bps) / BPS
    r0, r1 = state.reserve0, state.reserve1
    x = (math.sqrt(gamma * r0 * r1 / p) - r0) / gamma
    if x >= 1:
        amount = int(x)
        out = amm.get_amount_out(amount, r0, r1, pool.fee_bps)
        return replace(state, reserve0=r0 + amount, reserve1=r1 - out)
    y = (math.sqrt(gamma * r0 * r1 * p) - r1) / gamma
    if y >= 1:
        amount = int(y)
        out = amm.get_amount_out(amount, r1, r0, pool.fee_bps)
        return replace(state, reserve1=r1 + amount, reserve0=r0 - out)
    return state


def initial_wallet(
    settings: Settings, market: SimulatedMarket, prices: dict[str, float]
) -> dict[str, int]:
    """The starting portfolio: `initial_value` at the target weights, each unit in its first
    tradable member; LP positions for `portfolio.lp_targets` funded from the same holdings."""
    balances = dict.fromkeys(settings.tokens, 0)
    value = settings.backtest.initial_value
    for unit, weight in settings.portfolio.targets.items():
        members = [m for m in settings.portfolio.buckets.get(unit, [unit]) if m in settings.tokens]
        if not members:
            raise ConfigError(f"portfolio.targets.{unit}: no token to hold it in the backtest")
        balances[members[0]] += market._raw(members[0], value * weight, prices)
    for key, share in settings.portfolio.lp_targets.items():
        state = market.states.get(key) or next(
            (
                s
                for s in market.states.values()
                if s.pool.venue == key.partition(":")[0]
                and frozenset((s.pool.token0, s.pool.token1))
                == frozenset(key.partition(":")[2].split("/"))
            ),
            None,
        )
        if state is None:
            continue
        half = value * share / 2
        a0 = min(market._raw(state.pool.token0, half, prices), balances[state.pool.token0])
        a1 = min(market._raw(state.pool.token1, half, prices), balances[state.pool.token1])
        if a0 <= 0 or a1 <= 0:
            continue
        a0, a1 = amm.add_liquidity_amounts(a0, a1, state.reserve0, state.reserve1)
        minted = amm.liquidity_minted(a0, a1, state.reserve0, state.reserve1, state.total_supply)
        balances[state.pool.token0] -= a0
        balances[state.pool.token1] -= a1
        market.states[state.key] = replace(
            state,
            reserve0=state.reserve0 + a0,
            reserve1=state.reserve1 + a1,
            total_supply=state.total_supply + minted,
            wallet_lp=minted,
        )
    return balances


def simulate(
    settings: Settings,
    table: PriceTable,
    start: date | None = None,
    end: date | None = None,
    *,
    hold: bool = False,
    name: str = "strategy",
    progress: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Run the configured strategy (or buy-and-hold) over the price file."""
    symbols = list(settings.tokens)
    columns = [settings.backtest.price_columns.get(s, s) for s in symbols]
    days, rows = price_matrix(table, columns, start, end)
    prices0 = dict(zip(symbols, rows[0], strict=True))
    market = SimulatedMarket(settings, prices0)
    balances = initial_wallet(settings, market, prices0)
    weth = settings.weth_symbol()
    entries = {
        k: (s.reserve0 * s.wallet_lp // s.total_supply, s.reserve1 * s.wallet_lp // s.total_supply)
        for k, s in market.states.items()
        if s.wallet_lp
    }
    units = list(settings.portfolio.targets)
    result = BacktestResult(
        name,
        [],
        [],
        {u: [] for u in units},
        dict(settings.portfolio.targets),
        {u: settings.strategy.width(u) for u in units},
    )
    state = StrategyState()
    fees = impact = gas = 0.0
    snapshot: Snapshot | None = None
    for index, (day, row) in enumerate(zip(days, rows, strict=True)):
        prices = dict(zip(symbols, row, strict=True))
        market.arbitrage(prices)
        now = _epoch(day)
        gas_gwei = (
            settings.backtest.stress_gas_gwei if in_stress(day) else settings.backtest.gas_gwei
        )
        snapshot = Snapshot(
            settings.chain.chain_id,
            index,
            f"0x{index:064x}",
            now,
            int(gas_gwei * GWEI),
            Address(settings.wallet.address),
            0,
            tuple(balances.items()),
            tuple(market.states.values()),
            tuple((v, Address("0x" + "0" * 40)) for v in settings.venues),
        )
        view = value_portfolio(snapshot, settings)
        if not hold:
            state = observe(state, settings.strategy, observation(view, now))  # as the keeper
            evaluation = evaluate(snapshot, view, settings, state, now, int(gas_gwei * GWEI))
            if evaluation.decision.evaluated:
                state = replace(state, last_evaluation=now)
            if (
                evaluation.rebalance
                and evaluation.plan is not None
                and evaluation.plan.post_snapshot
            ):
                plan = evaluation.plan
                after = plan.post_snapshot
                assert after is not None
                balances = dict(after.balances)
                market.states = {s.key: s for s in after.pools}
                if weth:  # gas is paid in ETH: taken from WETH here
                    balances[weth] = max(balances[weth] - plan.gas * int(gas_gwei * GWEI), 0)
                fees += plan.fee_cost
                impact += plan.impact_cost
                gas += plan.gas_cost
                turnover = math.fsum(v for v in evaluation.decision.deltas.values() if v > 0)
                result.turnover += turnover
                result.events.append(index)
                state = replace(
                    state,
                    last_rebalance=now,
                    turnover_day=now // DAY,
                    turnover_today=state.turnover_on(now // DAY) + turnover,
                )
                snapshot = replace(
                    snapshot, balances=tuple(balances.items()), pools=tuple(market.states.values())
                )
                view = value_portfolio(snapshot, settings)
        result.dates.append(day)
        result.values.append(view.total_value)
        for unit in units:
            result.weights[unit].append(view.unit(unit).weight)
        result.fee_cost.append(fees)
        result.impact_cost.append(impact)
        result.gas_cost.append(gas)
        if progress:
            progress(index + 1, len(days))
    if snapshot is not None:
        final = value_portfolio(snapshot, settings)
        for position in final.lp_positions:
            entry = entries.get(position.key)
            if entry:
                p0 = (
                    final.prices[position.token0].spot
                    / 10 ** settings.tokens[position.token0].decimals
                )
                p1 = (
                    final.prices[position.token1].spot
                    / 10 ** settings.tokens[position.token1].decimals
                )
                hold_value = entry[0] * p0 + entry[1] * p1
                result.lp_il[position.key] = position.value / hold_value - 1 if hold_value else 0.0
    return result


def progress_bar(label: str) -> Callable[[int, int], None]:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 25% otherwise."""
    last = [-1]
    step = 1 if sys.stderr.isatty() else 25

    def update(done: int, total: int) -> None:
        percent = done * 100 // total // step * step
        if percent != last[0]:
            last[0] = percent
            bar = "#" * (percent // 4)
            end = "" if step == 1 and done < total else "\n"
            sys.stderr.write(f"\r{label:<18} [{bar:<25}] {percent:3d}%{end}")
            sys.stderr.flush()

    return update
