"""Pre-trade guards, pure: each returns None when the plan may go ahead, or the reason it may not.

What a refusal means is the caller's to say: the keeper skips the cycle on the price guard
(SkipCycle), halts on the daily loss cap and on too little ETH for gas (Halt), and waits on the
fee caps (FeeTooHigh, through `bot.execution.fees.check_caps`). The journal and the chain are
read by the caller; these only compare.
"""

from __future__ import annotations

from typing import Protocol

from bot.portfolio import Valuation
from bot.settings import ExecutionSettings, Settings
from bot.types import GWEI, NATIVE, Plan, Snapshot


class FeeQuote(Protocol):
    """The fees a plan would be signed at (`bot.execution.fees.Fees`), as the fee caps read them."""

    @property
    def base_fee(self) -> int: ...
    @property
    def max_fee(self) -> int: ...


def price_guard(plan: Plan, view: Valuation) -> str | None:
    """The plan swaps through a pool valuation flagged (far from its TWAP, no TWAP, stale): the
    first such pool by key, and why it was flagged."""
    flagged = view.flagged_pools
    touched = {key for action in plan.swaps for key in action.pools}
    bad = sorted(touched & set(flagged))
    if bad:
        return f"price guard: {bad[0]}: {flagged[bad[0]]}; not trading through it"
    return None


def daily_loss(lost_today: float, cap: float) -> str | None:
    """Today's trading costs and shortfalls have reached the daily loss cap."""
    if lost_today >= cap:
        return (
            f"today's trading costs and shortfalls reached {lost_today:,.2f}, "
            f"the daily loss cap {cap:,.2f}"
        )
    return None


def gas_balance(
    plan: Plan, max_fee: int, snapshot: Snapshot, vault: bool, settings: Settings
) -> str | None:
    """The account that pays the gas holds less ETH than the plan's gas at `max_fee` per gas.

    In vault mode the executor holds the portfolio and the wallet (one of the snapshot's other
    holdings) pays the gas. Not checked when the plan goes to a relay (`execution.relay_url`).
    """
    needed = plan.gas * max_fee
    payer = dict(snapshot.other_holdings).get(NATIVE, 0) if vault else snapshot.eth_balance
    if payer < needed and not settings.execution.relay_url:
        return (
            f"the wallet holds {payer / 1e18:.6f} ETH, the plan's gas needs up "
            f"to {needed / 1e18:.6f} ETH: top up {settings.wallet.address}, "
            "then `rebalancer resume`"
        )
    return None


def fee_caps(fees: FeeQuote, gas: int, eth_price: float, settings: ExecutionSettings) -> str | None:
    """The plan, `gas` in all, would pay more than the caps allow: a base fee above
    `max_fee_gwei`, or a gas cost (at the max fee, in the numeraire) above `max_gas_cost`."""
    cap = int(settings.max_fee_gwei * GWEI)
    if fees.base_fee > cap:
        return (
            f"base fee {fees.base_fee / GWEI:.1f} gwei is above execution.max_fee_gwei "
            f"{settings.max_fee_gwei:g}: waiting"
        )
    cost = gas * fees.max_fee / 1e18 * eth_price  # what is signed: suggest_fees clamps it
    if cost > settings.max_gas_cost:
        return (
            f"gas for this rebalance could cost {cost:,.2f}, above execution.max_gas_cost "
            f"{settings.max_gas_cost:,.2f}: waiting"
        )
    return None
