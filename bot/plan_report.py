"""How `rebalancer plan` shows a decision and its Plan, as a table or JSON."""

from __future__ import annotations

import json
from typing import Any

from bot.decide import Evaluation
from bot.portfolio import Valuation
from bot.settings import Settings
from bot.types import AddLiquidity, RemoveLiquidity, Swap, to_units


def as_json(view: Valuation, evaluation: Evaluation) -> dict[str, Any]:
    decision = evaluation.decision
    out: dict[str, Any] = {
        "block": view.block_number,
        "numeraire": view.numeraire,
        "total_value": view.total_value,
        "decision": {
            "act": decision.act,
            "rebalance": evaluation.rebalance,
            "reason": decision.reason,
            "skip_reason": evaluation.skip_reason,
            "breaches": [
                {
                    "unit": b.unit,
                    "weight": b.weight,
                    "target": b.target,
                    "drift_abs": b.drift_abs,
                    "band": b.width,
                }
                for b in decision.breaches
            ],
            "desired_weights": decision.desired_weights,
            "deltas": decision.deltas,
        },
        "gate": None,
        "plan": None,
    }
    if evaluation.gate is not None:
        gate = evaluation.gate
        out["gate"] = {
            "passed": gate.passed,
            "benefit": gate.benefit,
            "cost": gate.cost,
            "reason": gate.reason,
        }
    if evaluation.plan is not None:
        plan = evaluation.plan
        out["plan"] = {
            "deadline": plan.deadline,
            "gas": plan.gas,
            "gas_price_wei": str(plan.gas_price_wei),
            "costs": {
                "fees": plan.fee_cost,
                "impact": plan.impact_cost,
                "gas": plan.gas_cost,
                "total": plan.total_cost,
            },
            "post_weights": dict(plan.post_weights),
            "notes": list(plan.notes),
            "actions": [_action(a) for a in plan.actions],
        }
    return out


def _action(action: Swap | RemoveLiquidity | AddLiquidity) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in action.__slots__:
        value = getattr(action, name)
        # raw amounts as strings: they overflow JSON numbers
        data[name] = (
            str(value)
            if isinstance(value, int) and not isinstance(value, bool) and name != "gas"
            else value
        )
    if isinstance(action, Swap):
        data["path"] = list(action.path)
        data["pools"] = list(action.pools)
    return data


def as_table(view: Valuation, evaluation: Evaluation, settings: Settings) -> str:
    def amt(raw: int, symbol: str) -> str:
        return f"{to_units(raw, settings.tokens[symbol].decimals):,.6g} {symbol}"

    decision = evaluation.decision
    n = view.numeraire
    verdict = "REBALANCE" if evaluation.rebalance else f"no rebalance ({evaluation.skip_reason})"
    lines = [f"block {view.block_number}: {verdict}", f"  why: {decision.reason}"]
    if evaluation.gate is not None:
        lines.append(f"  cost gate: {evaluation.gate.reason}")
    plan = evaluation.plan
    if plan is None:
        return "\n".join(lines)
    lines += [
        "",
        f"plan ({len(plan.actions)} actions, {plan.gas:,} gas, deadline {plan.deadline}):",
    ]
    for i, action in enumerate(plan.actions, 1):
        if isinstance(action, Swap):
            out = action.path[-1]
            lines.append(
                f"  {i}. swap {amt(action.amount_in, action.path[0])} -> {out} via "
                f"{' > '.join(action.path)} on {action.venue}: expect "
                f"{amt(action.expected_out, out)}, min {amt(action.min_out, out)}"
                f"{' (fee-on-transfer)' if action.fee_on_transfer else ''}"
            )
        elif isinstance(action, RemoveLiquidity):
            lines.append(f"  {i}. remove {action.liquidity} LP wei from {action.pool}")
        else:
            lines.append(
                f"  {i}. add liquidity to {action.pool}: expect {action.expected_liquidity} LP wei"
            )
    lines.append(
        f"  costs: fees {plan.fee_cost:,.2f} + impact {plan.impact_cost:,.2f} + gas "
        f"{plan.gas_cost:,.2f} = {plan.total_cost:,.2f} {n}"
    )
    lines += ["", f"{'unit':<8} {'now':>8} {'target':>8} {'after':>8}"]
    for unit in view.units:
        after = plan.post_weights.get(unit.unit, 0.0)
        lines.append(f"{unit.unit:<8} {unit.weight:>8.2%} {unit.target:>8.2%} {after:>8.2%}")
    lines += [f"  note: {note}" for note in plan.notes]
    return "\n".join(lines)


def render(
    view: Valuation, evaluation: Evaluation, settings: Settings, as_json_output: bool
) -> str:
    if as_json_output:
        return json.dumps(as_json(view, evaluation), indent=2)
    return as_table(view, evaluation, settings)
