"""Hybrid: evaluate on the calendar, act only when a unit is outside its band.

The institutional default: it trades less than a calendar and reacts to a shock no later than
the next scheduled evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.portfolio import Valuation
from bot.settings import StrategySettings
from strategies.base import Decision, StrategyState
from strategies.schedule import is_due
from strategies.threshold import ThresholdStrategy


@dataclass(frozen=True)
class HybridStrategy:
    settings: StrategySettings
    name: str = "hybrid"

    def decide(self, view: Valuation, state: StrategyState, now: int) -> Decision:
        if not is_due(self.settings, state.last_evaluation, now):
            return Decision(False, "not scheduled now", "not_scheduled", evaluated=False)
        return ThresholdStrategy(self.settings).decide(view, state, now)
