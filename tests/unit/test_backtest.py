"""Backtests: hand-computed cases, the vectorized engine against its loop and an independent
calendar, CPMM arbitrage, the full engine, and bad price files."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from bot.backtest import sweep
from bot.backtest.engine import arbitraged, simulate
from bot.backtest.runner import event_ratio, json_safe, parse_period, regime_rates, run_sweep
from bot.errors import ConfigError
from bot.paths import prices_csv
from bot.prices import load_prices, price_matrix
from tests.synthetic import SETTINGS

TWO = np.array([[100.0, 1.0], [200.0, 1.0], [200.0, 1.0], [100.0, 1.0]])


def market(fee: float = 0.0) -> sweep.Market:
    return sweep.Market(
        TWO, np.array([0.5, 0.5]), np.array([1e30, 1e30]), fee=fee, gas=0.0, initial_value=1000.0
    )


@pytest.mark.parametrize(
    ("config", "final", "events"),
    [
        # A doubles on day 1: 1500 held 2/3-1/3, back to 750/750; A halves on day 3: 375 + 750.
        (sweep.SweepConfig("threshold", "absolute", 0.1, 1, 1.0), 1125.0, [1, 3]),
        # evaluated on day 2 only (then day 4 is past the end): one rebalance at 200, then A halves
        (sweep.SweepConfig("calendar", "absolute", 0.1, 2, 1.0), 1125.0, [2]),
        # day 3 is the only evaluation: 5 A at 100 + 500 B is on target, no breach, no trade
        (sweep.SweepConfig("hybrid", "absolute", 0.1, 3, 1.0), 1000.0, []),
        # the calendar acts anyway (a zero-size trade): counted, value unchanged
        (sweep.SweepConfig("calendar", "absolute", 0.1, 3, 1.0), 1000.0, [3]),
        # half of the drift: day 1 to 7/12 - 5/12 (A 875 = 4.375 units, B 625); day 3: 437.5 + 625
        (sweep.SweepConfig("threshold", "absolute", 0.1, 1, 0.5), 1062.5, [1]),
        # relative band 0.5: drift 1/6 is 33% of target 0.5: no breach at all
        (sweep.SweepConfig("threshold", "relative", 0.5, 1, 1.0), 1000.0, []),
    ],
)
def test_hand_computed_cases(config: sweep.SweepConfig, final: float, events: list[int]) -> None:
    result = sweep.run(market(), [config])
    assert result.final_value[0] == pytest.approx(final, rel=1e-12)
    assert list(np.flatnonzero(result.events[:, 0])) == events
    assert sweep.reference_loop(market(), config)["final_value"] == pytest.approx(final, rel=1e-12)


def test_hand_computed_costs() -> None:
    config = sweep.SweepConfig("threshold", "absolute", 0.1, 1, 1.0)
    result = sweep.run(market(fee=0.003), [config])
    # day 1: 250 of each side traded (500) pays 1.5; day 3 trades 187.3125 each side
    day1 = 1500 - 1.5
    day3_total = day1 / 2 / 200 * 100 + day1 / 2
    expected = day3_total - 0.003 * 2 * (day3_total / 2 - day1 / 2 / 200 * 100)
    assert result.final_value[0] == pytest.approx(expected, rel=1e-12)
    assert result.fee_cost[0] == pytest.approx(
        1.5 + 0.003 * 2 * (day3_total / 2 - day1 / 2 / 200 * 100), rel=1e-12
    )


@pytest.fixture(scope="module")
def real_market() -> sweep.Market:
    _, rows = price_matrix(load_prices(prices_csv()), ["ETH", "WBTC", "USDC", "LINK"])
    return sweep.Market(
        np.array(rows), np.array([0.4, 0.2, 0.3, 0.1]), np.array([20e6, 10e6, 30e6, 4e6])
    )


def test_vectorized_engine_equals_the_reference_loop(real_market: sweep.Market) -> None:
    configs = sweep.grid([0.02, 0.05, 0.1, 0.25], [1, 7, 30], partials=(1.0, 0.5))
    result = sweep.run(real_market, configs)
    rng = np.random.default_rng(3)
    for i in rng.choice(len(configs), 12, replace=False):
        reference = sweep.reference_loop(real_market, configs[i])
        for key, got in (
            ("final_value", result.final_value[i]),
            ("turnover", result.turnover[i]),
            ("fee_cost", result.fee_cost[i]),
            ("impact_cost", result.impact_cost[i]),
            ("tracking_error", result.tracking_error[i]),
        ):
            assert got == pytest.approx(reference[key], rel=1e-9, abs=1e-9), (configs[i], key)
        assert int(result.rebalances[i]) == reference["rebalances"]


def test_calendar_without_costs_equals_an_independent_implementation(
    real_market: sweep.Market,
) -> None:
    free = sweep.Market(
        real_market.prices, real_market.targets, np.full(4, np.inf), fee=0.0, gas=0.0
    )
    result = sweep.run(free, [sweep.SweepConfig("calendar", "absolute", 0.1, 30, 1.0)])
    # independently: target-percent orders every 30th day, nothing else
    prices = real_market.prices
    units = 1_000_000.0 * real_market.targets / prices[0]
    path = [1_000_000.0]
    for t in range(1, len(prices)):
        value = float(units @ prices[t])
        if t % 30 == 0:
            units = real_market.targets * value / prices[t]
        path.append(value)
    np.testing.assert_allclose(result.values[:, 0], path, rtol=1e-6)


def test_local_processes_give_identical_results(real_market: sweep.Market) -> None:
    configs = sweep.grid([0.02, 0.05, 0.1], [1, 7, 30])
    one = run_sweep(real_market, configs, workers=1)
    two = run_sweep(real_market, configs, workers=2)
    np.testing.assert_array_equal(one.final_value, two.final_value)
    np.testing.assert_array_equal(one.events, two.events)


def test_arbitrage_leaves_the_pool_at_the_external_price() -> None:
    from tests.synthetic import snapshot

    state = next(s for s in snapshot().pools if s.key == "uniswap:USDC/WETH")
    decimals = {s: t.decimals for s, t in SETTINGS.tokens.items()}
    k = state.reserve0 * state.reserve1
    for eth in (300.0, 120.0, 150.0, 150.0):
        prices = {"WETH": eth, "USDC": 1.0}
        state = arbitraged(state, prices, SETTINGS)
        assert state.reserve0 * state.reserve1 >= k  # fees only ever add to k
        k = state.reserve0 * state.reserve1
        weth_is_0 = state.pool.token0 == "WETH"
        r_weth, r_usdc = (
            (state.reserve0, state.reserve1) if weth_is_0 else (state.reserve1, state.reserve0)
        )
        pool_price = (r_usdc / 10 ** decimals["USDC"]) / (r_weth / 10 ** decimals["WETH"])
        # the arbitrageur stops where the price after the fee meets the market
        assert pool_price == pytest.approx(eth, rel=0.0031)
    # an LP holding the whole pool: value against holding its entry, as CPMM math says
    lp_value = r_weth / 1e18 * 150.0 + r_usdc / 1e6
    assert lp_value / 2 == pytest.approx(r_usdc / 1e6, rel=0.004)


def test_full_engine_runs_the_live_strategy_reproducibly() -> None:
    table = load_prices(prices_csv())
    start, end = date(2020, 2, 15), date(2020, 4, 15)
    first = simulate(SETTINGS, table, start, end)
    again = simulate(SETTINGS, table, start, end)
    assert first.values == again.values
    assert first.events == again.events
    assert first.events  # March 2020 breaches the bands
    held = simulate(SETTINGS, table, start, end, hold=True)
    assert held.events == []
    summary = first.summary()
    assert summary["rebalances"] == len(first.events)
    costs, by_regime = summary["costs"], summary["rebalances_by_regime"]
    tracking, held_tracking = summary["tracking_error"], held.summary()["tracking_error"]
    assert isinstance(costs, dict)
    assert isinstance(by_regime, dict)
    assert isinstance(tracking, float)
    assert isinstance(held_tracking, float)
    assert costs["fees"] > 0
    assert tracking < held_tracking
    assert set(by_regime) <= {"calm", "March 2020"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("date,ETH\n2020-01-02,1\n2020-01-01,2\n", "sort the file by date"),
        ("date,ETH\n2020-01-01,1\n2020-01-01,2\n", "appears twice"),
        ("date,ETH\n2020-01-01,0\n", "must be a positive price"),
        ("date,ETH\n2020-01-01,nan\n", "must be a positive price"),
    ],
)
def test_bad_price_files(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_prices(path)


def test_gaps_are_forward_filled_and_unknown_assets_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("date,ETH,LINK\n2020-01-01,100,5\n2020-01-02,,6\n2020-01-05,110,\n")
    days, rows = price_matrix(load_prices(path), ["ETH", "LINK"])
    assert days == [date(2020, 1, 1), date(2020, 1, 2), date(2020, 1, 5)]
    assert rows == [[100.0, 5.0], [100.0, 6.0], [110.0, 6.0]]
    with pytest.raises(ConfigError, match="has no column 'DOGE'"):
        price_matrix(load_prices(path), ["DOGE"])
    path.write_text("date,ETH,LINK\n2020-01-01,,5\n2020-01-02,100,6\n")
    with pytest.raises(ConfigError, match="ETH has no price on or before 2020-01-01"):
        price_matrix(load_prices(path), ["ETH", "LINK"])


def test_a_dask_cluster_gives_identical_results(real_market: sweep.Market) -> None:
    from distributed import LocalCluster

    configs = sweep.grid([0.02, 0.05, 0.1], [1, 7, 30])
    alone = run_sweep(real_market, configs)
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        on_cluster = run_sweep(real_market, configs, cluster=cluster.scheduler_address)
    np.testing.assert_array_equal(alone.final_value, on_cluster.final_value)
    np.testing.assert_array_equal(alone.events, on_cluster.events)
    np.testing.assert_array_equal(alone.values, on_cluster.values)


def test_a_regime_absent_from_the_period_has_no_rate_and_no_ratio() -> None:
    calm_days = [date(2020, 1, 1), date(2020, 1, 2), date(2020, 1, 3)]
    events = np.array([[False, True], [True, False], [False, False]])
    stress_rate, calm_rate = regime_rates(calm_days, events)
    assert np.isnan(stress_rate).all()  # no stress day: no rate, rather than 0 per 30 days
    np.testing.assert_allclose(calm_rate, [10.0, 10.0])
    configs = [sweep.SweepConfig("threshold", "absolute", w, 1, 1.0) for w in (0.05, 0.1)]
    ratio = event_ratio(calm_days, configs, stress_rate, calm_rate)
    assert ratio["median"] is None
    assert ratio["quartiles"] is None
    assert ratio["note"] == "the period has no day in a stress window"
    march = [date(2020, 3, 10), date(2020, 3, 11)]
    stress_rate, calm_rate = regime_rates(march, events[:2])
    assert np.isnan(calm_rate).all()
    assert event_ratio(march, configs, stress_rate, calm_rate)["note"] == (
        "the period has no calm day"
    )
    both = [date(2020, 2, 29), date(2020, 3, 1)]  # one calm day, then one stress day
    quiet = np.array([[False, False], [True, True]])
    stress_rate, calm_rate = regime_rates(both, quiet)
    ratio = event_ratio(both, configs, stress_rate, calm_rate)
    assert ratio["median"] is None
    assert ratio["note"] == "no drift-driven configuration rebalanced in calm periods"
    stress_rate, calm_rate = regime_rates(both, np.array([[True, True], [True, True]]))
    assert event_ratio(both, configs, stress_rate, calm_rate)["median"] == 1.0


def test_report_values_are_valid_json() -> None:
    assert json_safe({"a": [1.0, float("nan")], "b": (float("inf"), "x")}) == {
        "a": [1.0, None],
        "b": [None, "x"],
    }


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2020-13-01", None, "--from '2020-13-01' is not a date: use YYYY-MM-DD"),
        (None, "tomorrow", "--to 'tomorrow' is not a date: use YYYY-MM-DD"),
        ("2020-03-02", "2020-03-01", "--from 2020-03-02 is after --to 2020-03-01"),
    ],
)
def test_bad_periods(start: str | None, end: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_period(start, end)
    assert parse_period("2020-03-01", "2020-03-01") == (date(2020, 3, 1), date(2020, 3, 1))
    assert parse_period(None, None) == (None, None)
