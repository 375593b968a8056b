"""The steps every trigger shares once it has decided which units act."""

from __future__ import annotations

from bot.portfolio import Valuation
from bot.settings import StrategySettings
from strategies.base import Breach, Decision, StrategyState
from strategies.sizing import cap_turnover, desired_weights, unit_deltas


def in_cooldown(settings: StrategySettings, state: StrategyState, now: int) -> bool:
    return (
        state.last_rebalance is not None and now - state.last_rebalance < settings.cooldown_seconds
    )


def cooldown_decision(settings: StrategySettings, state: StrategyState, now: int) -> Decision:
    assert state.last_rebalance is not None
    left = settings.cooldown_seconds - (now - state.last_rebalance)
    return Decision(False, f"cooling down: {left}s until the next rebalance is allowed", "cooldown")


def rebalance(
    settings: StrategySettings,
    view: Valuation,
    state: StrategyState,
    now: int,
    acting: tuple[Breach, ...],
    all_units: bool,
    why: str,
) -> Decision:
    """Size the trades for the acting units and explain the result."""
    desired = desired_weights(settings, view, acting, all_units)
    deltas, notes = unit_deltas(settings, view, desired)
    deltas, cap_note = cap_turnover(settings, view, deltas, state, now)
    if cap_note:
        notes.append(cap_note)
    detail = f" ({'; '.join(notes)})" if notes else ""
    if not deltas:
        return Decision(
            False, f"{why}, but no trade is large enough{detail}", "below_minimum", acting, desired
        )
    return Decision(True, f"{why}{detail}", None, acting, desired, deltas)


def describe_breaches(breaches: tuple[Breach, ...], band: str) -> str:
    parts = []
    for b in breaches:
        if band == "absolute":
            parts.append(f"{b.unit} {b.drift_abs * 100:+.2f}pp (band {b.width * 100:.2f}pp)")
        else:
            rel = "n/a" if b.drift_rel is None else f"{b.drift_rel * 100:+.1f}%"
            parts.append(f"{b.unit} {rel} of target (band {b.width * 100:.1f}%)")
    return ", ".join(parts)
