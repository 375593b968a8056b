"""Parameter sweeps, vectorized across configurations with numpy.

A sweep asks one question many times (which band, frequency, band type and partial fraction?),
so it uses a simpler market than the full backtest: each rebalance pays a proportional fee plus
a price impact of x^2 / depth per asset traded (the constant-product slippage of a trade x in a
pool holding `depth` on each side, to first order), plus a fixed gas cost. `reference_loop` runs
the same model one configuration at a time in plain Python; the two must agree to 1e-9.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

TRIGGERS = {"threshold": 0, "calendar": 1, "hybrid": 2}
BANDS = {"absolute": 0, "relative": 1}


@dataclass(frozen=True)
class SweepConfig:
    trigger: str  # threshold | calendar | hybrid
    band: str  # absolute | relative
    width: float
    every_days: int  # evaluation interval for calendar and hybrid
    partial: float  # 1.0: back to target; 0.5: half of the drift


@dataclass(frozen=True)
class Market:
    prices: NDArray[np.float64]  # days x assets, USD
    targets: NDArray[np.float64]  # assets, sums to 1
    depth: NDArray[np.float64]  # assets: USD on each side of the pool each asset trades in
    fee: float = 0.003
    gas: float = 20.0  # USD per rebalance
    initial_value: float = 1_000_000.0


@dataclass(frozen=True)
class SweepResult:
    final_value: NDArray[np.float64]  # per configuration
    rebalances: NDArray[np.int64]
    turnover: NDArray[np.float64]
    fee_cost: NDArray[np.float64]
    impact_cost: NDArray[np.float64]
    gas_cost: NDArray[np.float64]
    values: NDArray[np.float64]  # days x configurations
    tracking_error: NDArray[np.float64]  # root mean square of the weight drift, per configuration
    events: NDArray[np.bool_]  # days x configurations: rebalanced that day


def grid(
    widths: Sequence[float],
    every: Sequence[int],
    bands: Sequence[str] = ("absolute", "relative"),
    partials: Sequence[float] = (1.0, 0.5),
    triggers: Sequence[str] = ("threshold", "calendar", "hybrid"),
) -> list[SweepConfig]:
    configs = []
    for trigger, band, width, days, partial in itertools.product(
        triggers, bands, widths, every, partials
    ):
        if trigger == "threshold" and days != every[0]:
            continue  # the threshold trigger looks every day: one interval is enough
        configs.append(SweepConfig(trigger, band, width, days, partial))
    return configs


def run(market: Market, configs: Sequence[SweepConfig]) -> SweepResult:
    """Every configuration at once, one step per day.

    Arrays are assets x configurations (a few long rows: sums over assets are vector adds), the
    daily step is a handful of in-place operations, and the trade arithmetic runs only on the
    configurations that act that day, which are few.
    """
    prices = market.prices
    days, assets = prices.shape
    n = len(configs)
    trigger = np.array([TRIGGERS[c.trigger] for c in configs])
    relative = np.array([BANDS[c.band] == 1 for c in configs])
    width = np.array([c.width for c in configs])
    every = np.array([c.every_days for c in configs])
    partial = np.array([c.partial for c in configs])
    targets = market.targets[:, None]
    depth = market.depth[:, None]
    # the band as a threshold on |weight - target|: a relative band scales with the target
    threshold = np.where(relative[None, :], width[None, :] * targets, width[None, :])
    calendar = trigger == 1
    daily = trigger == 0
    units = np.repeat((market.initial_value * market.targets / prices[0])[:, None], n, axis=1)
    # day-major: each day writes one contiguous row
    values = np.empty((days, n))
    events = np.zeros((days, n), dtype=bool)
    impact_total = np.zeros(n)
    drift_squares = np.zeros(n)
    values[0] = market.initial_value
    held = np.empty((assets, n))
    weights = np.empty((assets, n))
    drift = np.empty((assets, n))
    scratch = np.empty((assets, n))
    due = daily[None, :] | (np.arange(days)[:, None] % every[None, :] == 0)
    over = np.empty((assets, n), dtype=bool)
    traded_total = np.zeros(n)
    for t in range(1, days):
        price = prices[t][:, None]
        np.multiply(units, price, out=held)
        total = held.sum(axis=0)
        np.divide(held, total, out=weights)
        np.subtract(weights, targets, out=drift)
        np.multiply(drift, drift, out=scratch)
        drift_squares += scratch.sum(axis=0)
        np.abs(drift, out=scratch)
        np.greater(scratch, threshold, out=over)
        act = due[t] & (calendar | over.any(axis=0))
        # Whole-array arithmetic with the partial fraction zeroed where nothing acts: no
        # gathering of rows, and a non-acting row keeps its units (to the last bit or two).
        step = partial * act
        np.multiply(drift, step, out=drift)  # the weight each asset gives up
        np.abs(drift, out=scratch)
        scratch *= total
        traded = scratch.sum(axis=0)
        traded_total += traded
        np.multiply(scratch, scratch, out=scratch)
        scratch /= depth
        impact = scratch.sum(axis=0)
        impact_total += impact
        # fees and gas are totalled after the loop: fee x traded, gas x rebalances
        after = total - market.fee * traded - impact - market.gas * act
        np.subtract(weights, drift, out=units)
        units *= after / price
        events[t] = act
        values[t] = after
    rebalances = events.sum(axis=0)
    fee_cost = market.fee * traded_total
    impact_cost = impact_total
    gas_cost = market.gas * rebalances
    turnover = traded_total / 2
    return SweepResult(
        final_value=values[-1].copy(),
        rebalances=rebalances,
        turnover=turnover,
        fee_cost=fee_cost,
        impact_cost=impact_cost,
        gas_cost=gas_cost,
        values=values,
        tracking_error=np.sqrt(drift_squares / max(days - 1, 1) / assets),
        events=events,
    )


def reference_loop(market: Market, config: SweepConfig) -> dict[str, float]:
    """The same model for one configuration, in plain Python: the yardstick for `run`."""
    prices = market.prices.tolist()
    targets = market.targets.tolist()
    depth = market.depth.tolist()
    assets = len(targets)
    units = [market.initial_value * targets[i] / prices[0][i] for i in range(assets)]
    value = market.initial_value
    rebalances = 0
    fee_total = impact_total = gas_total = turnover = drift_squares = 0.0
    for t in range(1, len(prices)):
        held = [units[i] * prices[t][i] for i in range(assets)]
        total = sum(held)
        weights = [h / total for h in held]
        drift = [weights[i] - targets[i] for i in range(assets)]
        drift_squares += sum(d * d for d in drift)
        scheduled = config.trigger == "threshold" or t % config.every_days == 0
        if config.band == "relative":
            breached = any(abs(drift[i]) / targets[i] > config.width for i in range(assets))
        else:
            breached = any(abs(d) > config.width for d in drift)
        value = total
        if scheduled and (config.trigger == "calendar" or breached):
            new_weights = [weights[i] - config.partial * drift[i] for i in range(assets)]
            trade = [abs(new_weights[i] - weights[i]) * total for i in range(assets)]
            fees = market.fee * sum(trade)
            impact = sum(trade[i] ** 2 / depth[i] for i in range(assets))
            value = total - fees - impact - market.gas
            units = [new_weights[i] * value / prices[t][i] for i in range(assets)]
            rebalances += 1
            fee_total += fees
            impact_total += impact
            gas_total += market.gas
            turnover += sum(trade) / 2
    return {
        "final_value": value,
        "rebalances": rebalances,
        "turnover": turnover,
        "fee_cost": fee_total,
        "impact_cost": impact_total,
        "gas_cost": gas_total,
        "tracking_error": (drift_squares / max(len(prices) - 1, 1) / assets) ** 0.5,
    }
