"""The one interface behind the keeper's three modes, and what a rebalance comes to in any of them.

An `Executor` carries a plan out: live (`bot.execution.live`: signs and sends), dry-run
(`bot.execution.fork`: the same calls on a throw-away fork) or paper (`bot.execution.paper`: a
virtual portfolio). The keeper chooses one when it starts, and records every `Outcome` the same
way, in one place (`Keeper._record_outcome`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from bot.execution.reconcile import holdings
from bot.execution.settle import Check
from bot.journal import RebalanceUpdate
from bot.portfolio import Valuation
from bot.types import NATIVE, Action, AddLiquidity, Plan, RemoveLiquidity, Snapshot, Swap


@dataclass(frozen=True, slots=True)
class Expected:
    """What the chain should show from `block` on, name -> raw (`rebalancer reconcile`)."""

    block: int
    holdings: Mapping[str, int]

    @classmethod
    def of(cls, snapshot: Snapshot) -> Expected:
        """The holdings read, ETH included: what stays while nothing trades."""
        expected = holdings(snapshot)
        expected[NATIVE] = snapshot.eth_balance
        return cls(snapshot.block_number, expected)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a rebalance came to. Every field is optional: each says what the keeper does."""

    result: str | None = None  # counted in rebalancer_rebalances_total{result}
    row: RebalanceUpdate = field(default_factory=RebalanceUpdate)  # the rebalance row's columns
    executed: tuple[Action, ...] | None = None  # took effect: cost-basis lots follow them
    loss: float | None = None  # charged to the daily loss cap (and written to the row)
    turnover_share: float | None = None  # of the planned turnover, charged to cooldown and cap
    gas_paid_wei: int = 0
    expected: Expected | None = None  # what the chain should show now
    finished: bool = True  # the plan ran to its end: its quoted costs become the cost metrics
    error: Exception | None = None  # raised once all of the above is recorded


class Executor(Protocol):
    """How a plan is carried out; one per mode, chosen when the keeper starts."""

    def portfolio(self, snapshot: Snapshot) -> Snapshot:
        """The portfolio this mode trades, at the block read: the chain's, or paper's own."""
        ...

    def unchanged(self, snapshot: Snapshot) -> Expected | None:
        """What the chain should show after a cycle that did not trade (None: not tracked)."""
        ...

    async def execute(
        self, plan: Plan, snapshot: Snapshot, view: Valuation, rebalance_id: int
    ) -> Outcome:
        """Carry `plan` out for the rebalance row `rebalance_id`, already written."""
        ...

    def settle_unfinished(self) -> AsyncIterator[tuple[int, Outcome]]:
        """Rebalances a crash, a signal or an error left open, each once it is final."""
        ...


async def nothing_unfinished() -> AsyncIterator[tuple[int, Outcome]]:
    """`settle_unfinished` of a mode that sends nothing."""
    return
    yield  # an async generator that yields nothing


def action_json(action: Action) -> dict[str, Any]:
    """A plan action for the rebalance row's `trades`: integers as decimal strings."""
    out: dict[str, Any] = {}
    for name in action.__slots__:
        value = getattr(action, name)
        out[name] = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(action, Swap):
        out["path"] = list(action.path)
        out["pools"] = list(action.pools)
    return out


def action_from_json(data: Mapping[str, Any]) -> Action:
    """A plan action back from the rebalance row's `trades`, integers exact."""
    kind = {"swap": Swap, "remove_liquidity": RemoveLiquidity, "add_liquidity": AddLiquidity}
    cls = kind[data["kind"]]
    values: dict[str, Any] = {}
    for spec in fields(cls):
        value = data[spec.name]
        if spec.type == "int":
            value = int(value)
        elif str(spec.type).startswith("tuple"):
            value = tuple(value)
        values[spec.name] = value
    action: Action = cls(**values)
    return action


def check_json(check: Check) -> dict[str, Any]:
    """One post-trade check for the rebalance row's `checks`."""
    return {
        "tx": check.tx_hash,
        "actions": list(check.actions),
        "token": check.token,
        "expected": str(check.expected),
        "minimum": str(check.minimum),
        "realized": str(check.realized),
        "ok": check.ok,
    }
