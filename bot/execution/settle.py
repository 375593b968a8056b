"""What a rebalance actually did, from its mined transactions: its status, each action checked
against its quote and minimum, and what it costs. Pure: the keeper brings the receipts.

A rebalance's status follows from its transactions, whatever way the keeper left it (a normal
exit, an error, a signal, a crash found at the next start):
- `not_sent`: nothing was mined;
- `failed`: what was mined reverted (gas paid, nothing done);
- `partial`: some transactions succeeded (approvals, some actions), the plan was cut short;
- `shortfall`: an action delivered less than its minimum, or had no effect at all;
- `executed`: every action took effect, each at or above its minimum.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.types import Action, AddLiquidity, RemoveLiquidity, Swap, to_units

if TYPE_CHECKING:
    from bot.journal import RebalanceStatus

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


@dataclass(frozen=True, slots=True)
class Step:
    """One mined transaction of a rebalance."""

    tx_hash: str
    covers: tuple[int, ...]  # the plan's actions it carries out; () for approvals and cancels
    status: int  # 1: succeeded, 0: reverted
    gas_used: int
    gas_paid_wei: int
    flows: Mapping[str, int]  # token or pool key -> raw change of the trading account


@dataclass(frozen=True, slots=True)
class Check:
    """One token's change in one transaction against what the plan quoted and accepted."""

    tx_hash: str
    actions: tuple[int, ...]
    token: str
    expected: int  # raw, the plan's quote (negative: given up)
    minimum: int  # raw, the least the plan accepts
    realized: int  # raw, from the transaction's Transfer logs

    @property
    def ok(self) -> bool:
        no_effect = self.expected > 0 and self.realized <= 0
        return self.realized >= self.minimum and not no_effect


@dataclass(frozen=True, slots=True)
class Settlement:
    status: RebalanceStatus
    executed: tuple[int, ...]  # action indexes that took effect
    checks: tuple[Check, ...]
    gas_used: int
    gas_paid_wei: int

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)


def transfer_flows(
    logs: Iterable[Mapping[str, object]], account: str, names: Mapping[str, str]
) -> dict[str, int]:
    """Raw change per token for `account` from ERC-20 Transfer logs; `names` maps lowercase
    token (or pair) address to its name. Other contracts' logs are ignored."""
    me = account.lower().removeprefix("0x").rjust(64, "0")
    flows: dict[str, int] = {}
    for log in logs:
        name = names.get(str(log.get("address", "")).lower())
        topics = [str(t).lower() for t in log.get("topics", ()) or ()]  # type: ignore[attr-defined]
        if name is None or len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
            continue
        data = str(log.get("data", "0x")).removeprefix("0x") or "0"
        amount = int(data[:64], 16)
        if topics[2].removeprefix("0x") == me:
            flows[name] = flows.get(name, 0) + amount
        if topics[1].removeprefix("0x") == me:
            flows[name] = flows.get(name, 0) - amount
    return {name: amount for name, amount in flows.items() if amount}


def legs(action: Action) -> list[tuple[str, int, int]]:
    """(token, expected, minimum) raw changes of the trading account for one action."""
    if isinstance(action, Swap):
        return [
            (action.path[0], -action.amount_in, -action.amount_in),
            (action.path[-1], action.expected_out, action.min_out),
        ]
    if isinstance(action, RemoveLiquidity):
        return [
            (action.pool, -action.liquidity, -action.liquidity),
            (action.token0, action.expected0, action.min0),
            (action.token1, action.expected1, action.min1),
        ]
    assert isinstance(action, AddLiquidity)
    return [
        (action.token0, -action.amount0, -action.amount0_desired),
        (action.token1, -action.amount1, -action.amount1_desired),
        (action.pool, action.expected_liquidity, 1),  # the router mints at least 1 or reverts
    ]


def settle(actions: Sequence[Action], steps: Sequence[Step]) -> Settlement:
    checks: list[Check] = []
    executed: set[int] = set()
    for step in steps:
        if step.status != 1 or not step.covers:
            continue
        executed.update(step.covers)
        expected: dict[str, int] = {}
        minimum: dict[str, int] = {}
        for index in step.covers:
            for token, quoted, least in legs(actions[index]):
                expected[token] = expected.get(token, 0) + quoted
                minimum[token] = minimum.get(token, 0) + least
        for token in expected:
            checks.append(
                Check(
                    step.tx_hash,
                    step.covers,
                    token,
                    expected[token],
                    minimum[token],
                    step.flows.get(token, 0),
                )
            )
    gas_used = sum(s.gas_used for s in steps)
    gas_paid = sum(s.gas_paid_wei for s in steps)
    status: RebalanceStatus
    if not steps:
        status = "not_sent"
    elif any(not c.ok for c in checks):
        status = "shortfall"
    elif executed and len(executed) == len(actions):
        status = "executed"
    elif any(s.status == 1 for s in steps):
        status = "partial"
    else:
        status = "failed"
    return Settlement(status, tuple(sorted(executed)), tuple(checks), gas_used, gas_paid)


def shortfall_value(
    checks: Iterable[Check], prices: Mapping[str, float], decimals: Mapping[str, int]
) -> float:
    """Numeraire value of what came in below the quote (or went out above it)."""
    return math.fsum(
        to_units(c.expected - c.realized, decimals[c.token]) * prices[c.token]
        for c in checks
        if c.realized < c.expected and c.token in prices and c.token in decimals
    )


def executed_costs(actions: Sequence[Action], executed: Iterable[int]) -> float:
    """The fees and price impact the plan quoted, for the actions that took effect."""
    return math.fsum(
        a.fee_cost + a.impact_cost for i in executed if isinstance(a := actions[i], Swap)
    )


def executed_share(actions: Sequence[Action], executed: Iterable[int]) -> float:
    """How much of the plan took effect: by traded value, or by count without swaps."""
    done = set(executed)
    total = math.fsum(a.value_in for a in actions if isinstance(a, Swap))
    if total > 0:
        traded = math.fsum(
            a.value_in for i, a in enumerate(actions) if i in done and isinstance(a, Swap)
        )
        return traded / total
    return len(done) / len(actions) if actions else 0.0
