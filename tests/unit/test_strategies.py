"""Tables of cases for every trigger, band type, hysteresis mode, deadband, minimum, cooldown, cap."""

from __future__ import annotations

import math

import pytest

from bot.portfolio import Valuation, value_portfolio
from bot.settings import Settings
from strategies import Decision, StrategyState, build_strategy
from strategies.bands import band_width, smoothed_volatility
from strategies.base import PricePoint
from tests.synthetic import SETTINGS, snapshot, weights_portfolio, with_strategy

AT_TARGET = {"eth": 0.40, "usd": 0.30, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.005}
NOW = 1_700_000_000
LOOSE = {"min_trade_value": 0.0, "min_trade_fraction": 0.0, "deadband": 0.0, "cooldown_seconds": 0}


def decide(
    weights: dict[str, float],
    settings: Settings,
    state: StrategyState | None = None,
    now: int = NOW,
) -> tuple[Valuation, Decision]:
    view = value_portfolio(snapshot(weights_portfolio(weights)), settings)
    return view, build_strategy(settings.strategy).decide(view, state or StrategyState(), now)


def shifted(**changes: float) -> dict[str, float]:
    weights = dict(AT_TARGET)
    for unit, delta in changes.items():
        weights[unit] += delta
    assert math.isclose(sum(weights.values()), 1.0)
    return weights


# --- bands ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("band", "width", "weights", "breached"),
    [
        ("absolute", 0.05, AT_TARGET, set()),
        ("absolute", 0.05, shifted(eth=0.049, usd=-0.049), set()),
        ("absolute", 0.05, shifted(eth=0.051, usd=-0.051), {"eth", "usd"}),
        ("absolute", 0.05, shifted(WBTC=0.06, eth=-0.06), {"WBTC", "eth"}),
        ("relative", 0.25, shifted(LINK=-0.02, eth=0.02), set()),  # -21% of LINK's target
        ("relative", 0.25, shifted(LINK=-0.03, eth=0.03), {"LINK"}),  # -31.6%
        ("relative", 0.25, shifted(eth=0.09, usd=-0.09), {"usd"}),  # eth +22.5%, usd -30%
    ],
)
def test_band_breaches(
    band: str, width: float, weights: dict[str, float], breached: set[str]
) -> None:
    settings = with_strategy(
        trigger="threshold",
        band=band,
        band_width=width,
        band_overrides={"FOT": 0.003} if band == "absolute" else {},
        **LOOSE,
    )
    _, decision = decide(weights, settings)
    assert {b.unit for b in decision.breaches} == breached
    assert decision.act == bool(breached)
    assert decision.skip_reason == (None if breached else "in_band")


# --- hysteresis ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("target", {"eth": 0.40, "usd": 0.30, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.005}),
        ("band_edge", {"eth": 0.45, "usd": 0.25, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.005}),
        ("partial", {"eth": 0.435, "usd": 0.265, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.005}),
    ],
)
def test_hysteresis_modes(mode: str, expected: dict[str, float]) -> None:
    settings = with_strategy(trigger="threshold", rebalance_to=mode, partial_fraction=0.5, **LOOSE)
    view, decision = decide(shifted(eth=0.07, usd=-0.07), settings)
    assert decision.act
    assert decision.desired_weights == pytest.approx(expected, abs=1e-12)
    for unit, weight in expected.items():
        current = view.unit(unit).weight
        assert decision.deltas.get(unit, 0.0) == pytest.approx(
            (weight - current) * view.total_value, abs=1e-6
        )


def test_band_edge_moves_the_residual_to_units_on_the_other_side() -> None:
    # eth breaches up by 8pp; usd (-5pp) and LINK (-3pp) are inside their bands but below target.
    settings = with_strategy(
        trigger="threshold", rebalance_to="band_edge", band_width=0.06, **LOOSE
    )
    _, decision = decide(shifted(eth=0.08, usd=-0.05, LINK=-0.03), settings)
    assert [b.unit for b in decision.breaches] == ["eth"]
    desired = decision.desired_weights
    assert desired["eth"] == pytest.approx(0.46)
    assert desired["usd"] == pytest.approx(0.25 + 0.02)  # takes the 2pp toward its target first
    assert desired["LINK"] == pytest.approx(0.065)


# --- deadband, minimum trade, caps, cooldown --------------------------------------------------
def test_deadband_drops_small_unit_moves() -> None:
    settings = with_strategy(trigger="threshold", **{**LOOSE, "deadband": 0.01})
    _, decision = decide(shifted(eth=0.06, usd=-0.055, LINK=-0.005), settings)
    assert decision.act
    assert "LINK" not in decision.deltas  # 0.5pp < 1% deadband
    assert "inside the deadband" in decision.reason
    assert sum(decision.deltas.values()) == pytest.approx(0.0, abs=1e-6)  # buys net against sells


@pytest.mark.parametrize(
    ("minimum", "fraction", "kept"),
    [
        (0.0, 0.0, {"eth", "usd", "LINK"}),
        (1_000.0, 0.0, {"eth", "usd"}),
        (0.0, 0.02, {"eth", "usd"}),
    ],
)
def test_minimum_trade_size(minimum: float, fraction: float, kept: set[str]) -> None:
    settings = with_strategy(
        trigger="threshold", **{**LOOSE, "min_trade_value": minimum, "min_trade_fraction": fraction}
    )
    _, decision = decide(shifted(eth=0.06, usd=-0.052, LINK=-0.008), settings)  # LINK moves $800
    assert set(decision.deltas) == kept


def test_nothing_large_enough_is_a_skip() -> None:
    settings = with_strategy(trigger="threshold", **{**LOOSE, "min_trade_value": 50_000.0})
    _, decision = decide(shifted(eth=0.06, usd=-0.06), settings)
    assert not decision.act
    assert decision.skip_reason == "below_minimum"


def test_cooldown() -> None:
    settings = with_strategy(trigger="threshold", **{**LOOSE, "cooldown_seconds": 3600})
    weights = shifted(eth=0.06, usd=-0.06)
    _, blocked = decide(weights, settings, StrategyState(last_rebalance=NOW - 100))
    assert (blocked.act, blocked.skip_reason) == (False, "cooldown")
    assert "3500s" in blocked.reason
    _, free = decide(weights, settings, StrategyState(last_rebalance=NOW - 3600))
    assert free.act


def test_turnover_caps_scale_trades_down() -> None:
    caps = SETTINGS.strategy.caps.model_copy(update={"max_turnover_fraction": 0.02})
    settings = with_strategy(trigger="threshold", caps=caps, **LOOSE)
    view, decision = decide(shifted(eth=0.06, usd=-0.06), settings)
    buys = sum(d for d in decision.deltas.values() if d > 0)
    assert buys == pytest.approx(0.02 * view.total_value)
    assert "per-rebalance turnover cap" in decision.reason
    daily = SETTINGS.strategy.caps.model_copy(update={"max_daily_turnover_fraction": 0.5})
    settings = with_strategy(trigger="threshold", caps=daily, **LOOSE)
    state = StrategyState(turnover_day=NOW // 86_400, turnover_today=0.49 * view.total_value)
    _, decision = decide(shifted(eth=0.06, usd=-0.06), settings, state)
    assert sum(d for d in decision.deltas.values() if d > 0) == pytest.approx(
        0.01 * view.total_value
    )
    assert "daily turnover cap" in decision.reason
    yesterday = StrategyState(
        turnover_day=NOW // 86_400 - 1, turnover_today=0.49 * view.total_value
    )
    _, decision = decide(shifted(eth=0.06, usd=-0.06), settings, yesterday)
    assert sum(d for d in decision.deltas.values() if d > 0) == pytest.approx(
        0.06 * view.total_value
    )


# --- calendar and hybrid ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trigger", "last", "weights", "act", "skip"),
    [
        ("calendar", None, shifted(eth=0.02, usd=-0.02), True, None),  # due, trades though in band
        ("calendar", NOW - 3_600, shifted(eth=0.06, usd=-0.06), False, "not_scheduled"),
        ("calendar", NOW - 86_400, shifted(eth=0.02, usd=-0.02), True, None),
        ("calendar", NOW - 86_400, AT_TARGET, False, "below_minimum"),
        ("hybrid", NOW - 3_600, shifted(eth=0.06, usd=-0.06), False, "not_scheduled"),
        ("hybrid", NOW - 86_400, shifted(eth=0.02, usd=-0.02), False, "in_band"),
        ("hybrid", NOW - 86_400, shifted(eth=0.06, usd=-0.06), True, None),
        ("threshold", NOW - 10, shifted(eth=0.06, usd=-0.06), True, None),  # no schedule
    ],
)
def test_triggers(
    trigger: str, last: int | None, weights: dict[str, float], act: bool, skip: str | None
) -> None:
    settings = with_strategy(trigger=trigger, interval_seconds=86_400, **LOOSE)
    _, decision = decide(weights, settings, StrategyState(last_evaluation=last))
    assert (decision.act, decision.skip_reason) == (act, skip)
    assert decision.evaluated == (skip != "not_scheduled")


@pytest.mark.parametrize(
    ("cron", "last", "now", "due"),
    [
        (
            "0 0 * * 1",
            1_700_000_000,
            1_700_000_000 + 3_600,
            False,
        ),  # 2023-11-14 (Tue): next Monday is days away
        ("0 0 * * 1", 1_700_000_000, 1_700_438_400, True),  # 2023-11-20 00:00 UTC, a Monday
        ("*/15 * * * *", 1_700_000_000, 1_700_000_000 + 900, True),
        ("*/15 * * * *", 1_700_000_100, 1_700_000_100 + 60, False),
    ],
)
def test_cron_schedule(cron: str, last: int, now: int, due: bool) -> None:
    settings = with_strategy(trigger="calendar", cron=cron, **LOOSE)
    _, decision = decide(
        shifted(eth=0.02, usd=-0.02), settings, StrategyState(last_evaluation=last), now
    )
    assert decision.evaluated == due


# --- volatility-aware bands -------------------------------------------------------------------
def history(volatility_per_step: float, steps: int = 60) -> tuple[PricePoint, ...]:
    points = []
    price = 100.0
    for i in range(steps):
        price *= math.exp(volatility_per_step if i % 2 else -volatility_per_step)
        points.append(PricePoint(NOW - (steps - i) * 86_400, (("eth", price),)))
    return tuple(points)


def test_volatility_scales_bands_within_floor_and_cap() -> None:
    vol = SETTINGS.strategy.volatility_bands.model_copy(
        update={
            "enabled": True,
            "reference_volatility": 0.6,
            "floor": 0.5,
            "cap": 3.0,
            "smoothing": 1.0,
        }
    )
    settings = with_strategy(volatility_bands=vol).strategy
    calm, wild, medium = history(0.001), history(0.5), history(0.6 / math.sqrt(365))
    assert band_width(settings, "eth", StrategyState(history=calm)) == pytest.approx(
        0.05 * 0.5
    )  # floor
    assert band_width(settings, "eth", StrategyState(history=wild)) == pytest.approx(
        0.05 * 3.0
    )  # cap
    realized = smoothed_volatility(StrategyState(history=medium), "eth", 1.0, 10)
    assert realized is not None
    assert band_width(settings, "eth", StrategyState(history=medium)) == pytest.approx(
        0.05 * realized / 0.6
    )
    assert (
        band_width(settings, "eth", StrategyState(history=calm[:5])) == 0.05
    )  # too little history
    # smoothing damps a single transient quote
    spiky = (*calm[:-1], PricePoint(NOW, (("eth", 1_000.0),)))
    raw_vol = smoothed_volatility(StrategyState(history=spiky), "eth", 1.0, 10)
    smooth_vol = smoothed_volatility(StrategyState(history=spiky), "eth", 0.1, 10)
    assert raw_vol is not None
    assert smooth_vol is not None
    assert smooth_vol < raw_vol / 3


def test_a_zero_target_holding_breaches_a_relative_band() -> None:
    targets = {"eth": 0.405, "usd": 0.30, "WBTC": 0.20, "LINK": 0.095, "FOT": 0.0}
    settings = SETTINGS.model_copy(
        update={"portfolio": SETTINGS.portfolio.model_copy(update={"targets": targets})}
    )
    settings = with_strategy(
        settings, trigger="threshold", band="relative", band_width=0.5, band_overrides={}, **LOOSE
    )
    _, decision = decide(AT_TARGET, settings)
    assert [b.unit for b in decision.breaches] == ["FOT"]
    assert decision.deltas["FOT"] < 0
