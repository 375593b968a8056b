"""Paper fills: the virtual portfolio moves by exactly the plan's quotes, and costs what it quoted."""

from __future__ import annotations

from pathlib import Path

from bot.execution.paper import PaperExecutor
from bot.execution.reconcile import expected_changes, holdings
from bot.journal import Journal
from bot.planner import plan
from bot.portfolio import value_portfolio
from bot.types import NATIVE
from tests.synthetic import SETTINGS, snapshot, weights_portfolio

NOW = 2000


async def test_a_paper_fill_moves_the_virtual_holdings_by_the_quotes(tmp_path: Path) -> None:
    snap = snapshot(
        weights_portfolio({"eth": 0.7, "usd": 0.1, "WBTC": 0.1, "LINK": 0.095, "FOT": 0.005})
    )
    view = value_portfolio(snap, SETTINGS)
    proposed = plan(snap, view, SETTINGS, {"eth": -20_000.0, "usd": 20_000.0}, NOW)
    assert proposed.swaps
    journal = Journal(tmp_path / "j.sqlite")
    paper = PaperExecutor(SETTINGS, journal)

    start = paper.holdings(snap)  # the first read starts from the wallet
    assert start == {**holdings(snap), NATIVE: snap.eth_balance}
    outcome = await paper.execute(proposed, snap, view, rebalance_id=1)

    after = paper.holdings(snap)
    quoted = expected_changes(proposed)
    assert {k: after.get(k, 0) - start.get(k, 0) for k in set(after) | set(start)} == {
        k: quoted.get(k, 0) for k in set(after) | set(start)
    }
    assert outcome.loss == proposed.total_cost
    assert outcome.executed == proposed.actions
    assert outcome.row["status"] == "paper"
    # the chain's snapshot is valued as the virtual portfolio: the wallet itself did not move
    virtual = paper.portfolio(snap)
    assert dict(virtual.balances) == {s: after.get(s, 0) for s, _ in snap.balances}
    assert dict(snap.balances) == {s: start.get(s, 0) for s, _ in snap.balances}
    journal.close()
