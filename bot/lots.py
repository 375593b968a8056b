"""Cost-basis lots, pure: which open lots a sale closes (FIFO or HIFO), the gain it realizes,
and the lot a purchase opens.

The keeper reads the open lots from the journal, calls these, and writes what they return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from bot.portfolio import Valuation
from bot.types import Swap, to_units

LotMethod = Literal["FIFO", "HIFO"]


@dataclass(frozen=True, slots=True)
class Lot:
    id: int
    amount: float  # whole units still open
    unit_cost: float  # numeraire per unit at acquisition
    acquired: float  # unix time


def apply_trade(
    open_lots: Sequence[Lot], sold_units: float, proceeds: float, method: LotMethod
) -> tuple[list[tuple[int, float]], float]:
    """The lots a sale of `sold_units` for `proceeds` (numeraire) closes, as (lot id, amount
    closed), and the gain it realizes: per unit closed, the sale price (proceeds / sold_units)
    less the lot's unit cost.

    `open_lots` come oldest first, as the journal gives them. FIFO closes the oldest first, HIFO
    the dearest first (equal costs: the oldest first). Units sold beyond every open lot close
    nothing and realize nothing: their cost is unknown. A lot with nothing left is passed over.
    """
    ordered = sorted(open_lots, key=lambda lot: -lot.unit_cost) if method == "HIFO" else open_lots
    closures: list[tuple[int, float]] = []
    gain = 0.0
    left = sold_units
    for lot in ordered:
        if left <= 0:
            break
        if lot.amount <= 0:
            continue
        take = min(lot.amount, left)
        gain += take * (proceeds / sold_units - lot.unit_cost)
        closures.append((lot.id, take))
        left -= take
    return closures, gain


def opened_unit_cost(bought_units: float, proceeds: float) -> float:
    """The unit cost of the lot a purchase opens: what was given up per unit received (0.0 when
    nothing was received)."""
    return proceeds / bought_units if bought_units else 0.0


def swap_units(swap: Swap, decimals: Mapping[str, int]) -> tuple[float, float]:
    """Whole units the swap sells (its input) and buys (its expected output)."""
    sold, bought = swap.path[0], swap.path[-1]
    return to_units(swap.amount_in, decimals[sold]), to_units(swap.expected_out, decimals[bought])


def seed_lots(view: Valuation) -> list[tuple[str, float, float]]:
    """First run: one lot per holding, (asset, amount, unit cost) at today's price (the true cost
    is unknown)."""
    return [
        (asset.asset, asset.amount, view.prices[asset.asset].spot)
        for asset in view.assets
        if asset.amount > 0
    ]
