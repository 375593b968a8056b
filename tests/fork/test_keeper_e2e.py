"""End to end on the fork fixture: a price shock, one rebalance, weights back in their bands,
a complete journal row, and /metrics showing it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from anvil_fixtures.shock import replay
from bot.journal import Journal
from bot.metrics import Metrics, MetricsServer
from bot.status import read_and_value
from tests.conftest import Chain
from tests.keeper_helpers import keeper_settings, make_keeper


async def test_shock_rebalance_journal_and_metrics(
    forked: tuple[Chain, Chain], tmp_path: Path
) -> None:
    parent, fork = forked
    replay(fork.url, fork.manifest, date(2020, 3, 12))
    settings = keeper_settings(fork.url, tmp_path)
    # let the TWAP window pass so the new prices are no longer "sudden"
    fork.rpc("anvil_mine", hex(settings.valuation.twap_window_seconds // 12 + 10), hex(12))
    _, shocked = await read_and_value(settings)
    assert any(abs(u.drift_abs) > settings.strategy.width(u.unit) for u in shocked.units)

    journal = Journal(tmp_path / "journal.sqlite")
    metrics = Metrics()
    server = MetricsServer(metrics, "127.0.0.1", 0, 600)
    await server.start()
    try:
        async with make_keeper(settings, "live", journal, metrics, fork.manifest) as keeper:
            first = await keeper.cycle()
            second = await keeper.cycle()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{server.port}/metrics") as response:
                text = await response.text()
            async with session.get(f"http://127.0.0.1:{server.port}/healthz") as response:
                assert response.status == 200
    finally:
        await server.stop()

    assert first.status == "rebalanced", first.reason
    assert second.status == "skipped", second.reason  # back inside the bands: nothing more to do
    _, after = await read_and_value(settings)
    for unit in after.units:
        assert abs(unit.drift_abs) <= settings.strategy.width(unit.unit), unit

    (row,) = journal.rebalances()
    assert row.status == "executed"
    for field in (
        "time",
        "block",
        "pre_weights",
        "post_weights",
        "realized_weights",
        "trades",
        "quoted",
        "realized",
        "gas_used",
        "gas_cost_wei",
        "fee_cost",
        "impact_cost",
        "gas_cost",
        "tx_hashes",
        "value_before",
        "value_after",
        "turnover",
        "realized_gain",
    ):
        assert getattr(row, field) not in (None, "", [], {}), field
    # The lots were seeded this cycle at the prices the plan sells at, and FIFO closes those
    # first (every sale fits in them): nothing gained or lost, up to rounding. A decimals or
    # price slip in the cost basis would show here.
    assert row.realized_gain == pytest.approx(0.0, abs=1e-6)
    assert row.realized is not None
    assert set(row.quoted) <= set(row.realized)
    assert row.quoted == {
        k: v for k, v in row.realized.items() if k in row.quoted
    }  # fills at the quotes
    cycles = journal.cycles()
    assert [c.status for c in reversed(cycles)] == ["rebalanced", "skipped"]

    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("rebalancer_rebalances_total", (("result", "executed"),))] == 1.0
    assert samples[("rebalancer_portfolio_value", ())] == pytest.approx(after.total_value, rel=1e-9)
    assert samples[("rebalancer_halted", ())] == 0.0
    assert samples[("rebalancer_gas_spent_wei_total", ())] > 0
    assert ("rebalancer_cycle_duration_seconds_count", ()) in samples
    assert any(name == "rebalancer_asset_weight" for name, _ in samples)
    assert any(name == "rebalancer_rpc_requests_total" for name, _ in samples)
    assert any(name == "rebalancer_impermanent_loss_ratio" for name, _ in samples)
    # the parent chain never saw any of it
    assert parent.w3.eth.block_number == parent.manifest["block_number"]
