"""Rebalancing policies: one module per trigger behind the Strategy protocol (strategies.base)."""

from __future__ import annotations

from bot.settings import StrategySettings
from strategies.base import Decision, Strategy, StrategyState
from strategies.calendar import CalendarStrategy
from strategies.hybrid import HybridStrategy
from strategies.threshold import ThresholdStrategy

__all__ = ["Decision", "Strategy", "StrategyState", "build_strategy"]


def build_strategy(settings: StrategySettings) -> Strategy:
    """The configured trigger policy."""
    policies: dict[str, type[ThresholdStrategy] | type[CalendarStrategy] | type[HybridStrategy]] = {
        "threshold": ThresholdStrategy,
        "calendar": CalendarStrategy,
        "hybrid": HybridStrategy,
    }
    strategy: Strategy = policies[settings.trigger](settings)
    return strategy
