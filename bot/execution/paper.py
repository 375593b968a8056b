"""Paper mode: a virtual portfolio, kept in the journal (`paper_holdings`), valued at the real
chain's prices and filled at the plan's exact quotes. The chain never sees a transaction.

It starts as the wallet's holdings at the first block the keeper reads.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace

from bot.execution.outcome import Expected, Outcome, nothing_unfinished
from bot.execution.reconcile import expected_changes, holdings
from bot.journal import Journal
from bot.portfolio import Valuation, value_portfolio
from bot.settings import Settings
from bot.types import NATIVE, Plan, Snapshot


class PaperExecutor:
    def __init__(self, settings: Settings, journal: Journal) -> None:
        self.settings = settings
        self.journal = journal

    def holdings(self, snapshot: Snapshot) -> dict[str, int]:
        """The virtual holdings, name -> raw; the first call starts them from `snapshot`."""
        raw = self.journal.get_state("paper_holdings")
        if raw is None:
            start = holdings(snapshot)
            start[NATIVE] = snapshot.eth_balance
            self._save(start)
            return start
        return {k: int(v) for k, v in json.loads(raw).items()}

    def portfolio(self, snapshot: Snapshot) -> Snapshot:
        """`snapshot` holding the virtual portfolio instead of the wallet's."""
        virtual = self.holdings(snapshot)
        balances = tuple((symbol, virtual.get(symbol, 0)) for symbol, _ in snapshot.balances)
        pools = tuple(
            replace(state, wallet_lp=virtual.get(state.key, 0)) for state in snapshot.pools
        )
        return replace(
            snapshot,
            balances=balances,
            pools=pools,
            eth_balance=virtual.get(NATIVE, 0),
            other_holdings=(),
        )

    def unchanged(self, snapshot: Snapshot) -> Expected | None:
        return None  # the chain is not expected to follow a virtual portfolio

    def settle_unfinished(self) -> AsyncIterator[tuple[int, Outcome]]:
        return nothing_unfinished()

    async def execute(
        self, plan: Plan, snapshot: Snapshot, view: Valuation, rebalance_id: int
    ) -> Outcome:
        """Filled at the plan's quotes; its quoted costs are the loss."""
        quoted = expected_changes(plan)
        virtual = self.holdings(snapshot)
        for name, change in quoted.items():
            virtual[name] = virtual.get(name, 0) + change
        self._save(virtual)
        after = value_portfolio(self.portfolio(snapshot), self.settings)
        return Outcome(
            result="paper",
            row={
                "status": "paper",
                "realized": {k: str(v) for k, v in quoted.items()},
                "realized_weights": after.weights,
                "value_after": after.total_value,
            },
            executed=plan.actions,
            loss=plan.total_cost,
            turnover_share=1.0,
        )

    def _save(self, virtual: dict[str, int]) -> None:
        self.journal.set_state(
            "paper_holdings", json.dumps({k: str(v) for k, v in virtual.items()})
        )
