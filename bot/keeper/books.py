"""The keeper's books, kept in the journal from cycle to cycle: the strategy's state (cooldown,
turnover, price history), the cost-basis lots, and the holdings `rebalancer reconcile` should
find on chain."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace

from bot.execution.outcome import Expected
from bot.journal import Journal
from bot.lots import apply_trade, opened_unit_cost, seed_lots, swap_units
from bot.portfolio import Valuation
from bot.settings import Settings
from bot.types import Action, Swap
from strategies.base import DAY, PricePoint, StrategyState


class Books:
    def __init__(self, journal: Journal, settings: Settings) -> None:
        self.journal = journal
        self.settings = settings

    # --- the strategy's state -----------------------------------------------------------------
    def strategy_state(self) -> StrategyState:
        raw = self.journal.get_state("strategy_state")
        if raw is None:
            return StrategyState()
        data = json.loads(raw)
        history = tuple(
            PricePoint(p[0], tuple((k, v) for k, v in p[1])) for p in data.pop("history", [])
        )
        return StrategyState(**data, history=history)

    def save_strategy_state(self, state: StrategyState) -> None:
        data = asdict(state)  # the history is already sized in time (strategies.state.observe)
        data["history"] = [[p.timestamp, list(p.prices)] for p in state.history]
        self.journal.set_state("strategy_state", json.dumps(data))

    def charge_turnover(self, turnover: float, now: int) -> None:
        """The cooldown and the daily turnover cap count what took effect, however it ended."""
        state = self.strategy_state()
        day = now // DAY
        self.save_strategy_state(
            replace(
                state,
                last_rebalance=max(now, state.last_rebalance or 0),
                turnover_day=day,
                turnover_today=state.turnover_on(day) + turnover,
            )
        )

    # --- what the chain should show -----------------------------------------------------------
    def remember(self, expected: Expected | None) -> None:
        """What the chain should show until the keeper trades again; None: nothing to expect."""
        if expected is None:
            return
        holdings = {k: str(v) for k, v in expected.holdings.items()}
        self.journal.set_state(
            "expected_holdings", json.dumps({"block": expected.block, "holdings": holdings})
        )

    # --- cost basis ---------------------------------------------------------------------------
    def bootstrap_lots(self, view: Valuation) -> None:
        """First run: open one lot per holding at today's price (the true cost is unknown)."""
        if self.journal.has_lots():
            return
        for asset, amount, unit_cost in seed_lots(view):
            self.journal.add_lot(asset, amount, unit_cost, None)

    def update_lots(self, actions: Sequence[Action], rebalance_id: int) -> float:
        """Buys open lots at the traded price; sells close lots FIFO or HIFO. Returns the gain."""
        decimals = {symbol: t.decimals for symbol, t in self.settings.tokens.items()}
        gain = 0.0
        for action in actions:
            if not isinstance(action, Swap):
                continue
            # one swap at a time: a later swap may sell what an earlier one bought
            sold_units, bought_units = swap_units(action, decimals)
            proceeds = action.value_in  # numeraire value given up, at valuation prices
            lots = self.journal.open_lots(action.path[0])
            closures, realized = apply_trade(
                lots, sold_units, proceeds, self.settings.keeper.lot_method
            )
            for lot_id, amount in closures:
                self.journal.reduce_lot(lot_id, amount)
            self.journal.add_lot(
                action.path[-1],
                bought_units,
                opened_unit_cost(bought_units, proceeds),
                rebalance_id,
            )
            gain += realized
        return gain
