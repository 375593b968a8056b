"""Tolerance bands: absolute (percentage points) or relative (fraction of target), optionally
scaled by the realized volatility of a smoothed price."""

from __future__ import annotations

import itertools
import math

from bot.portfolio import UnitAllocation, Valuation
from bot.settings import StrategySettings
from strategies.base import Breach, StrategyState

YEAR = 365 * 86_400


def smoothed_volatility(
    state: StrategyState, unit: str, smoothing: float, min_observations: int
) -> float | None:
    """Annualised volatility of the EMA-smoothed price of `unit` (None: too little history).

    Smoothing first keeps a transient quote from widening the bands by itself.
    """
    series = [(p.timestamp, dict(p.prices).get(unit)) for p in state.history]
    points = [(t, v) for t, v in series if v is not None and v > 0]
    if len(points) < min_observations:
        return None
    ema = points[0][1]
    smoothed = []
    for timestamp, value in points:
        ema = smoothing * value + (1 - smoothing) * ema
        smoothed.append((timestamp, ema))
    returns = []
    spacing = []
    for (t0, v0), (t1, v1) in itertools.pairwise(smoothed):
        if t1 > t0:
            returns.append(math.log(v1 / v0))
            spacing.append(t1 - t0)
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    variance = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    step = sum(spacing) / len(spacing)
    return math.sqrt(variance * YEAR / step)


def band_width(settings: StrategySettings, unit: str, state: StrategyState) -> float:
    """The unit's band, widened or narrowed by realized volatility when configured."""
    width = settings.width(unit)
    vol = settings.volatility_bands
    if not vol.enabled:
        return width
    realized = smoothed_volatility(state, unit, vol.smoothing, vol.min_observations)
    if realized is None:
        return width
    return width * min(max(realized / vol.reference_volatility, vol.floor), vol.cap)


def breach(settings: StrategySettings, unit: UnitAllocation, width: float) -> bool:
    if settings.band == "absolute":
        return abs(unit.drift_abs) > width
    if unit.target == 0:
        return unit.weight > 0  # any holding of a zero-target unit is outside a relative band
    return abs(unit.drift_abs) / unit.target > width


def breaches(
    settings: StrategySettings, view: Valuation, state: StrategyState
) -> tuple[Breach, ...]:
    out = []
    for unit in view.units:
        width = band_width(settings, unit.unit, state)
        if breach(settings, unit, width):
            out.append(
                Breach(unit.unit, unit.weight, unit.target, unit.drift_abs, unit.drift_rel, width)
            )
    return tuple(out)


def band_edge(settings: StrategySettings, unit: UnitAllocation, width: float) -> float:
    """The weight at the edge of the band nearest to the unit's current weight."""
    half = width if settings.band == "absolute" else width * unit.target
    return unit.target + half if unit.weight > unit.target else unit.target - half
