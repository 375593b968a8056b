"""How strategy state follows the market: one pure update, shared by the keeper and the backtest.

The price history is sized in time, not in points, so that volatility-scaled bands measure the
same thing whether prices arrive once a block (the keeper) or once a day (the backtest).
"""

from __future__ import annotations

import math
from dataclasses import replace

from bot.portfolio import Valuation
from bot.settings import StrategySettings
from strategies.base import DAY, PricePoint, StrategyState

WINDOW_SAMPLES = 30  # the points a window shorter than 30 days is cut into


def history_seconds(settings: StrategySettings) -> int:
    """How far back the history must reach: the longest window any strategy reads.

    Today that is the volatility window (kept even while volatility bands are off, so that
    turning them on finds the history already there)."""
    return settings.volatility_bands.window_seconds


def history_spacing(settings: StrategySettings) -> int:
    """Seconds between kept price points: a day, or window / 30 for a window under 30 days."""
    return max(1, min(DAY, history_seconds(settings) // WINDOW_SAMPLES))


def observation(view: Valuation, timestamp: int) -> PricePoint:
    """The price point a valuation gives: each allocation unit's mean spot price of its members."""
    return PricePoint(
        timestamp,
        tuple(
            (
                u.unit,
                math.fsum(view.prices[m].spot for m in u.members if m in view.prices)
                / max(len(u.members), 1),
            )
            for u in view.units
        ),
    )


def observe(state: StrategyState, settings: StrategySettings, point: PricePoint) -> StrategyState:
    """The state after one more observation; the only way the history changes, live and backtest.

    Sizing rule: time is cut into slots of `history_spacing` seconds counted from the epoch (one
    slot per UTC day for windows of 30 days or more). A slot keeps only the first point seen in
    it, and only the slots that cover the window are kept (the current slot, and the
    ceil(window / spacing) before it). So the history holds at most window / spacing + 1 points
    whatever the cadence: a 30-day window is 31 points, not 216,000 block-by-block ones, and a
    keeper sampling every 12 s keeps the very midnight points the backtest's daily prices give.
    The whole history is re-sized at every call, so a history saved under another rule (an older
    journal's point per block, a changed window) is brought into line by the next observation.
    """
    spacing = history_spacing(settings)
    newest = point.timestamp
    if state.history:  # a clock that went back adds nothing and drops nothing
        newest = max(newest, state.history[-1].timestamp)
    last = newest // spacing - math.ceil(history_seconds(settings) / spacing) - 1
    kept: list[PricePoint] = []
    for candidate in (*state.history, point):
        slot = candidate.timestamp // spacing
        if slot > last:  # in time order, the first point of its slot, within the window
            kept.append(candidate)
            last = slot
    if kept[-1] is not point and len(kept) == len(state.history):
        return state  # the history's own points, all of them: nothing changed
    return replace(state, history=tuple(kept))
