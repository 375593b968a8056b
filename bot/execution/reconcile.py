"""After a plan executed: what each token actually did against what the plan quoted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.portfolio import Valuation
from bot.settings import Settings
from bot.types import Action, Plan, Snapshot, to_units


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str  # token symbol or pool key (LP token)
    expected: int  # raw change the plan quoted
    realized: int  # raw change on chain

    @property
    def slippage(self) -> float | None:
        """realized / expected - 1 for what the plan bought; negative is worse than quoted."""
        if self.expected <= 0:
            return None
        return self.realized / self.expected - 1


@dataclass(frozen=True, slots=True)
class Reconciliation:
    outcomes: tuple[Outcome, ...]
    gas_used: int
    gas_cost_wei: int
    shortfall_value: float  # numeraire value of received-less-than-quoted, summed

    @property
    def exact(self) -> bool:
        return all(o.expected == o.realized for o in self.outcomes)


def expected_changes(plan: Plan) -> dict[str, int]:
    return action_changes(plan.actions)


def action_changes(actions: Iterable[Action]) -> dict[str, int]:
    """Raw change per token (or pool key, for LP tokens) the actions were quoted at."""
    changes: dict[str, int] = {}

    def add(name: str, amount: int) -> None:
        changes[name] = changes.get(name, 0) + amount

    for action in actions:
        for name, amount in action.changes:
            add(name, amount)
    return {name: amount for name, amount in changes.items() if amount}


def holdings(snapshot: Snapshot) -> dict[str, int]:
    out = dict(snapshot.balances)
    for state in snapshot.pools:
        out[state.key] = state.wallet_lp
    return out


def reconcile(
    plan: Plan,
    before: Snapshot,
    after: Snapshot,
    settings: Settings,
    view: Valuation,
    gas_used: int,
    gas_cost_wei: int,
) -> Reconciliation:
    """Compare the trading account's balances before and after with the plan's quotes.

    Differences come from anything else that moved the balances in between: transfers,
    rebases, airdrops, a fee-on-transfer token. ETH is left out: it paid the gas.
    """
    expected = expected_changes(plan)
    old, new = holdings(before), holdings(after)
    names = sorted(set(expected) | {n for n in new if new.get(n, 0) != old.get(n, 0)})
    outcomes = tuple(Outcome(n, expected.get(n, 0), new.get(n, 0) - old.get(n, 0)) for n in names)
    shortfall = 0.0
    for outcome in outcomes:
        missing = outcome.expected - outcome.realized
        if missing > 0 and outcome.name in settings.tokens:
            decimals = settings.tokens[outcome.name].decimals
            shortfall += to_units(missing, decimals) * view.prices[outcome.name].spot
    return Reconciliation(outcomes, gas_used, gas_cost_wei, shortfall)
