"""EIP-1559 fees from eth_feeHistory, and the caps above which a rebalance waits."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.chain.rpc import RpcClient
from bot.errors import DataError, FeeTooHigh
from bot.guards import fee_caps
from bot.settings import ExecutionSettings
from bot.types import GWEI


@dataclass(frozen=True, slots=True)
class Fees:
    base_fee: int  # of the pending block
    max_priority_fee: int
    max_fee: int

    def bumped(self, fraction: float) -> Fees:
        """Both fields raised by at least `fraction`, as replacement requires (rounded up)."""
        bump = math.ceil
        return Fees(
            self.base_fee,
            max(bump(self.max_priority_fee * (1 + fraction)), self.max_priority_fee + 1),
            max(bump(self.max_fee * (1 + fraction)), self.max_fee + 1),
        )


async def suggest_fees(rpc: RpcClient, settings: ExecutionSettings) -> Fees:
    """Tip: the configured percentile of recent tips; max fee: twice the next base fee plus tip.

    Never above `execution.max_fee_gwei`: when the market needs more than the cap (base fee plus
    tip), FeeTooHigh says so and the rebalance waits; otherwise the max fee is clamped to the cap.
    """
    history = await rpc.call(
        "eth_feeHistory", hex(settings.fee_history_blocks), "latest", [settings.fee_percentile]
    )
    try:
        base_fee = int(history["baseFeePerGas"][-1], 16)  # the pending block's
        tips = [int(row[0], 16) for row in history.get("reward") or [] if row]
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise DataError(f"eth_feeHistory answered something unexpected ({err})") from None
    floor = int(settings.priority_fee_gwei * GWEI)
    tip = max(sorted(tips)[len(tips) // 2] if tips else 0, floor)
    return within_cap(Fees(base_fee, tip, 2 * base_fee + tip), settings)


def within_cap(fees: Fees, settings: ExecutionSettings) -> Fees:
    """The fees clamped to the cap, or FeeTooHigh when the market needs more than it."""
    cap = int(settings.max_fee_gwei * GWEI)
    needed = fees.base_fee + fees.max_priority_fee
    if needed > cap:
        raise FeeTooHigh(
            f"the market needs {needed / GWEI:.1f} gwei (base fee {fees.base_fee / GWEI:.1f} + "
            f"tip {fees.max_priority_fee / GWEI:.1f}), above execution.max_fee_gwei "
            f"{settings.max_fee_gwei:g}: waiting"
        )
    return Fees(fees.base_fee, fees.max_priority_fee, min(fees.max_fee, cap))


def assert_signable(tx: dict[str, object], settings: ExecutionSettings) -> None:
    """The last check before a signature: no fee field above the cap, the tip within the max fee."""
    cap = int(settings.max_fee_gwei * GWEI)
    max_fee = int(str(tx["maxFeePerGas"]))
    tip = int(str(tx["maxPriorityFeePerGas"]))
    if max_fee > cap or tip > max_fee:
        raise FeeTooHigh(
            f"refusing to sign at max fee {max_fee / GWEI:.1f} gwei, tip {tip / GWEI:.1f} gwei: "
            f"above execution.max_fee_gwei {settings.max_fee_gwei:g}"
        )


def check_caps(fees: Fees, gas: int, eth_price: float, settings: ExecutionSettings) -> None:
    """Raise FeeTooHigh (say why) when this plan would pay more than the caps allow
    (`bot.guards.fee_caps`)."""
    refused = fee_caps(fees, gas, eth_price, settings)
    if refused:
        raise FeeTooHigh(refused)
