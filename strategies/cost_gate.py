"""The cost gate: rebalance only when the estimated benefit exceeds the plan's total cost.

Benefit models (strategy.cost_gate.benefit_model):

- tracking_var (default): the value at risk of the drift. Holding weights w instead of targets t
  is an unintended active position d = w - t; over a horizon of h days its one-sided loss at
  confidence z is  V * z * sqrt(sum_u (d_u * vol_u)^2) * sqrt(h / 365),  with each unit's
  annualised volatility from `volatility` (or `default_volatility`), units taken as independent.
  The benefit of a rebalance is that VaR before minus the VaR left after it.
- linear: a configured value per unit of drift removed:  V * value_per_drift * sum_u |d_u| - |d'_u|.

Cost is the plan's gas, swap fees and price impact, all in the numeraire. The gate passes when
benefit >= min_benefit_ratio * cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.portfolio import Valuation
from bot.settings import CostGate


@dataclass(frozen=True, slots=True)
class GateResult:
    passed: bool
    benefit: float
    cost: float
    reason: str


def drift_risk(view: Valuation, weights: dict[str, float], gate: CostGate) -> float:
    variance = 0.0
    for unit in view.units:
        vol = gate.volatility.get(unit.unit, gate.default_volatility)
        drift = weights.get(unit.unit, unit.weight) - unit.target
        variance += (drift * vol) ** 2
    return (
        view.total_value * gate.z_score * math.sqrt(variance) * math.sqrt(gate.horizon_days / 365)
    )


def benefit(view: Valuation, after: dict[str, float], gate: CostGate) -> float:
    if gate.benefit_model == "linear":
        removed = math.fsum(
            abs(u.weight - u.target) - abs(after.get(u.unit, u.weight) - u.target)
            for u in view.units
        )
        return view.total_value * gate.value_per_drift * removed
    return drift_risk(view, view.weights, gate) - drift_risk(view, after, gate)


def check(view: Valuation, after: dict[str, float], cost: float, gate: CostGate) -> GateResult:
    gain = benefit(view, after, gate)
    if not gate.enabled:
        return GateResult(True, gain, cost, "cost gate disabled")
    passed = gain >= gate.min_benefit_ratio * cost
    verdict = "exceeds" if passed else "does not cover"
    reason = (
        f"benefit {gain:,.2f} ({gate.benefit_model}) {verdict} "
        f"{gate.min_benefit_ratio:g}x the cost {cost:,.2f}"
    )
    return GateResult(passed, gain, cost, reason)
