"""Strategy state: one update (strategies.state.observe) for the keeper and the backtest, with a
price history sized in time; the keeper's journal format; live and backtest bands agree."""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from bot.backtest import engine
from bot.decide import Evaluation, evaluate
from bot.journal import Journal
from bot.keeper import Keeper
from bot.metrics import Metrics
from bot.paths import prices_csv
from bot.portfolio import Valuation
from bot.prices import load_prices
from bot.settings import Settings, StrategySettings
from bot.types import Snapshot
from strategies.bands import band_width
from strategies.base import DAY, PricePoint, StrategyState
from strategies.state import history_spacing, observe
from tests.synthetic import SETTINGS, with_strategy

BLOCK = 12
START = 1_577_836_800  # 2020-01-01 00:00 UTC


def vol_settings(**changes: Any) -> Settings:
    bands = SETTINGS.strategy.volatility_bands.model_copy(update={"enabled": True, **changes})
    return with_strategy(volatility_bands=bands)


def point(timestamp: int, eth: float = 100.0) -> PricePoint:
    return PricePoint(timestamp, (("eth", eth), ("usd", 1.0)))


def test_a_point_per_block_keeps_one_point_per_day_over_the_window() -> None:
    settings = vol_settings().strategy  # the default window: 30 days
    assert history_spacing(settings) == DAY
    state = StrategyState()
    for timestamp in range(START + 5 * BLOCK, START + 40 * DAY, BLOCK):
        state = observe(state, settings, point(timestamp, 100.0 + timestamp % 997))
    stamps = [p.timestamp for p in state.history]
    # the current day and the 30 before it, each by its first block; day 0 started late
    assert stamps == [START + day * DAY for day in range(9, 40)]
    # a second observation in the same day changes nothing
    assert observe(state, settings, point(stamps[-1] + 600)) is state
    # a clock that went back adds nothing and drops nothing
    assert observe(state, settings, point(stamps[0] - DAY)) is state


def test_a_short_window_is_cut_into_thirty_slots() -> None:
    settings = vol_settings(window_seconds=3600).strategy
    assert history_spacing(settings) == 120
    state = StrategyState()
    for timestamp in range(START, START + 2 * 3600, BLOCK):
        state = observe(state, settings, point(timestamp))
    stamps = [p.timestamp for p in state.history]
    assert len(stamps) == 31
    assert stamps[-1] - stamps[0] == 3600
    assert all(b - a == 120 for a, b in itertools.pairwise(stamps))


def keeper(settings: Settings, tmp_path: Path) -> Keeper:
    return Keeper(settings, "paper", Journal(tmp_path / "journal.sqlite"), Metrics())


def test_a_journal_written_by_the_point_per_block_keeper_still_loads(tmp_path: Path) -> None:
    settings = vol_settings()
    k = keeper(settings, tmp_path)
    now = START + 40 * DAY + 3600  # 01:00
    # as the keeper wrote it before the history was sized in time: its last 500 blocks
    old = {
        "last_evaluation": now - 600,
        "last_rebalance": now - 7200,
        "turnover_day": now // DAY,
        "turnover_today": 1234.5,
        "history": [
            [now - (500 - i) * BLOCK, [["eth", 100.0 + i], ["usd", 1.0]]] for i in range(500)
        ],
    }
    k.journal.set_state("strategy_state", json.dumps(old))
    loaded = k.books.strategy_state()
    assert len(loaded.history) == 500
    assert loaded.history[0] == point(now - 500 * BLOCK, 100.0)
    assert (loaded.last_evaluation, loaded.last_rebalance) == (now - 600, now - 7200)
    assert (loaded.turnover_day, loaded.turnover_today) == (now // DAY, 1234.5)
    # the next observation re-sizes it: the first block of yesterday and of today
    state = observe(loaded, settings.strategy, point(now))
    k.books.save_strategy_state(state)
    again = k.books.strategy_state()
    assert again == state
    assert [p.timestamp for p in again.history] == [now - 500 * BLOCK, now - 3600]
    assert again.last_rebalance == now - 7200
    k.journal.close()


def test_keeper_and_backtest_compute_the_same_volatility_bands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backtest over 120 days of daily prices, and the keeper following the same prices
    block by block (every 12 s, log-linear within a day, through its journal every 6 hours): the
    same history, hence the same volatility-scaled bands, at every day and in between."""
    settings = vol_settings()
    strategy: StrategySettings = settings.strategy
    seen: dict[int, StrategyState] = {}

    def spy(
        snapshot: Snapshot,
        view: Valuation,
        config: Settings,
        state: StrategyState,
        now: int,
        gas_price_wei: int | None = None,
    ) -> Evaluation:
        seen[now] = state
        return evaluate(snapshot, view, config, state, now, gas_price_wei)

    monkeypatch.setattr(engine, "evaluate", spy)
    table = load_prices(prices_csv())
    result = engine.simulate(settings, table, date(2020, 1, 1), date(2020, 4, 29))
    assert len(result.dates) == 120
    days = sorted(seen)
    assert days[1] - days[0] == DAY
    # the day's prices as the backtest saw them (each unit from its pools, after arbitrage)
    daily = [dict(seen[day].history[-1].prices) for day in days]
    units = list(daily[0])

    k = keeper(settings, tmp_path)
    live = StrategyState()
    widths: list[float] = []
    for index, day in enumerate(days):
        first = daily[index]
        last = daily[index + 1] if index + 1 < len(days) else first
        for step in range(0, DAY, BLOCK):
            timestamp = day + step
            share = step / DAY
            prices = tuple((u, first[u] * (last[u] / first[u]) ** share) for u in units)
            live = observe(live, strategy, PricePoint(timestamp, prices))
            if step % (6 * 3600) == 0:  # as the keeper's cycle: to the journal and back
                k.books.save_strategy_state(live)
                live = k.books.strategy_state()
            if step in (0, DAY // 2):  # at midnight, when the backtest decides, and at noon
                backtest = seen[day]
                assert live.history == backtest.history
                for unit in units:
                    width = band_width(strategy, unit, live)
                    assert width == band_width(strategy, unit, backtest)
                    widths.append(width)
    k.journal.close()
    assert len(live.history) == 31
    # the bands did move with volatility (March 2020), between the floor and the cap
    assert len(set(widths)) > 100
    assert min(widths) < 0.05 < max(widths)
