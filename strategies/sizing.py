"""How much to trade once a rebalance is on: hysteresis, deadband, minimum trade, turnover caps."""

from __future__ import annotations

import math

from bot.portfolio import Valuation
from bot.settings import StrategySettings
from strategies.bands import band_edge
from strategies.base import DAY, Breach, StrategyState


def desired_weights(
    settings: StrategySettings, view: Valuation, acting: tuple[Breach, ...], all_units: bool
) -> dict[str, float]:
    """Post-trade weights: acting units move per `rebalance_to`; the rest absorb the difference.

    `all_units` (calendar rebalances) moves every unit; otherwise only the breached ones move
    and the others stay unless the weight must go somewhere, in which case it goes first to the
    units already drifting the same way as the need, then in proportion to targets.
    """
    widths = {b.unit: b.width for b in acting}
    moving = {u.unit for u in view.units} if all_units else set(widths)
    desired: dict[str, float] = {}
    for unit in view.units:
        if unit.unit not in moving:
            desired[unit.unit] = unit.weight
        elif settings.rebalance_to == "target":
            desired[unit.unit] = unit.target
        elif settings.rebalance_to == "partial":
            desired[unit.unit] = unit.weight - settings.partial_fraction * (
                unit.weight - unit.target
            )
        elif unit.unit in widths:
            desired[unit.unit] = band_edge(settings, unit, widths[unit.unit])
        else:
            desired[unit.unit] = unit.weight
    residual = 1.0 - math.fsum(desired.values())
    if abs(residual) > 1e-15:
        # Units outside `moving` that sit on the other side of their target take the residual
        # first (it moves them toward target), up to their drift.
        for unit in view.units:
            if unit.unit in moving or abs(residual) <= 1e-15:
                continue
            room = unit.target - unit.weight
            if room * residual > 0:
                take = min(abs(room), abs(residual)) * math.copysign(1, residual)
                desired[unit.unit] += take
                residual -= take
        if abs(residual) > 1e-15:
            total_target = math.fsum(u.target for u in view.units) or 1.0
            for unit in view.units:
                desired[unit.unit] += residual * unit.target / total_target
    return desired


def unit_deltas(
    settings: StrategySettings, view: Valuation, desired: dict[str, float]
) -> tuple[dict[str, float], list[str]]:
    """Value to buy (+) or sell (-) per unit; drops moves under the deadband or minimum trade.

    Returns the deltas and notes on what was dropped. Deltas are in notional terms, converted
    back to market value by the unit's notional-to-value ratio.
    """
    notes = []
    minimum = max(settings.min_trade_value, settings.min_trade_fraction * view.total_value)
    deltas: dict[str, float] = {}
    for unit in view.units:
        change = desired[unit.unit] - unit.weight
        if abs(change) < max(settings.deadband, 1e-9):  # 1e-9: float noise is not a trade
            if abs(change) > 1e-12:
                notes.append(f"{unit.unit}: {change * 100:+.2f}pp is inside the deadband")
            continue
        notional_delta = change * view.total_notional
        per_value = unit.notional / _market_value(view, unit.unit) if unit.notional > 0 else 1.0
        value_delta = notional_delta / per_value
        if abs(value_delta) < minimum:
            notes.append(
                f"{unit.unit}: {value_delta:,.2f} is under the minimum trade of {minimum:,.2f}"
            )
            continue
        deltas[unit.unit] = value_delta
    return _net(deltas), notes


def _market_value(view: Valuation, unit: str) -> float:
    return math.fsum(a.value for a in view.assets if a.unit == unit) or 1.0


def _net(deltas: dict[str, float]) -> dict[str, float]:
    """Scale the larger side down so buys equal sells (a rebalance moves value, it adds none)."""
    buys = math.fsum(d for d in deltas.values() if d > 0)
    sells = -math.fsum(d for d in deltas.values() if d < 0)
    if buys == 0 or sells == 0:
        return {}
    if buys > sells:
        return {u: d * sells / buys if d > 0 else d for u, d in deltas.items()}
    return {u: d * buys / sells if d < 0 else d for u, d in deltas.items()}


def cap_turnover(
    settings: StrategySettings,
    view: Valuation,
    deltas: dict[str, float],
    state: StrategyState,
    now: int,
) -> tuple[dict[str, float], str | None]:
    """Scale every delta down to the per-rebalance and per-day turnover caps."""
    turnover = math.fsum(d for d in deltas.values() if d > 0)
    if turnover == 0:
        return deltas, None
    caps = settings.caps
    per_rebalance = caps.max_turnover_fraction * view.total_value
    left_today = caps.max_daily_turnover_fraction * view.total_value - state.turnover_on(now // DAY)
    allowed = min(per_rebalance, max(left_today, 0.0))
    if turnover <= allowed:
        return deltas, None
    scale = allowed / turnover
    which = "per-rebalance" if per_rebalance <= left_today else "daily"
    note = f"turnover {turnover:,.2f} capped to {allowed:,.2f} by the {which} turnover cap"
    return {u: d * scale for u, d in deltas.items()}, note
