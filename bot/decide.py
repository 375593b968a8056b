"""One evaluation, pure: valuation -> strategy decision -> plan -> cost gate.

The keeper, `rebalancer plan` and the backtest all call this, so they judge alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.planner import plan
from bot.portfolio import Valuation
from bot.settings import Settings
from bot.types import Plan, Snapshot
from strategies import Decision, StrategyState, build_strategy
from strategies.cost_gate import GateResult, check


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Decision
    plan: Plan | None
    gate: GateResult | None

    @property
    def rebalance(self) -> bool:
        return (
            self.decision.act
            and self.plan is not None
            and self.gate is not None
            and self.gate.passed
        )

    @property
    def skip_reason(self) -> str | None:
        if self.rebalance:
            return None
        if self.decision.skip_reason:
            return self.decision.skip_reason
        if self.plan is not None and not self.plan.actions:
            return "no_route"
        return "cost_gate"


def evaluate(
    snapshot: Snapshot,
    view: Valuation,
    settings: Settings,
    state: StrategyState,
    now: int,
    gas_price_wei: int | None = None,
) -> Evaluation:
    decision = build_strategy(settings.strategy).decide(view, state, now)
    if not decision.act:
        return Evaluation(decision, None, None)
    proposed = plan(snapshot, view, settings, decision.deltas, now, gas_price_wei)
    if not proposed.actions:
        return Evaluation(decision, proposed, None)
    gate = check(
        view, dict(proposed.post_weights), proposed.total_cost, settings.strategy.cost_gate
    )
    return Evaluation(decision, proposed, gate)
