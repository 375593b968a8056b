"""Calendar: rebalance on a schedule (every N seconds, or a cron expression), whatever the drift.

The deadband and the minimum trade size still apply, so a calm portfolio trades little.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.portfolio import Valuation
from bot.settings import StrategySettings
from strategies.bands import breaches
from strategies.base import Decision, StrategyState
from strategies.common import cooldown_decision, in_cooldown, rebalance
from strategies.schedule import is_due


@dataclass(frozen=True)
class CalendarStrategy:
    settings: StrategySettings
    name: str = "calendar"

    def decide(self, view: Valuation, state: StrategyState, now: int) -> Decision:
        if not is_due(self.settings, state.last_evaluation, now):
            return Decision(False, "not scheduled now", "not_scheduled", evaluated=False)
        if in_cooldown(self.settings, state, now):
            return cooldown_decision(self.settings, state, now)
        found = breaches(self.settings, view, state)
        return rebalance(self.settings, view, state, now, found, True, "scheduled rebalance")
