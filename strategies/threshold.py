"""Threshold: rebalance whenever a unit leaves its band, checked at every evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from bot.portfolio import Valuation
from bot.settings import StrategySettings
from strategies.bands import breaches
from strategies.base import Decision, StrategyState
from strategies.common import cooldown_decision, describe_breaches, in_cooldown, rebalance


@dataclass(frozen=True)
class ThresholdStrategy:
    settings: StrategySettings
    name: str = "threshold"

    def decide(self, view: Valuation, state: StrategyState, now: int) -> Decision:
        found = breaches(self.settings, view, state)
        if not found:
            return Decision(False, "every unit is inside its band", "in_band")
        if in_cooldown(self.settings, state, now):
            return cooldown_decision(self.settings, state, now)
        why = f"band breached: {describe_breaches(found, self.settings.band)}"
        # Back to target rebalances every unit; band-edge and partial moves touch only breaches.
        all_units = self.settings.rebalance_to == "target"
        return rebalance(self.settings, view, state, now, found, all_units, why)
