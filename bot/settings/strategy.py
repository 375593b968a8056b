"""The portfolio's targets, and when and how far the strategy rebalances."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, model_validator

from bot.settings.base import Fraction01, Section


class LpEntry(Section):
    """What an LP position was opened with, for its impermanent loss against holding."""

    pool: str
    """The position's pool, as "venue:A/B" (a configured pool)."""
    amount0: int = Field(gt=0)
    """Amount of the pair's token0 (the token with the lower address) deposited, raw (in the
    token's smallest unit)."""
    amount1: int = Field(gt=0)
    """Amount of the pair's token1 deposited, raw (in the token's smallest unit)."""


class PortfolioSettings(Section):
    """Targets by allocation unit: a bucket name, or an asset symbol that is in no bucket."""

    targets: dict[str, Fraction01]
    """Target weight per allocation unit (a bucket name, or a token symbol in no bucket; "ETH" is
    the native coin), as fractions of portfolio value that sum to 1."""
    buckets: dict[str, list[str]] = Field(default_factory=dict)
    """Correlated assets held to one target: bucket name -> member symbols (for example usd =
    ["USDC", "USDT", "DAI"]). An asset is in one bucket at most."""
    lp_entries: list[LpEntry] = Field(default_factory=list)
    """What each LP position was opened with ([[portfolio.lp_entries]]), for its impermanent
    loss; positions not listed are valued without it."""
    lp_targets: dict[str, Fraction01] = Field(default_factory=dict)
    """Share of portfolio value to keep in an LP position ("venue:A/B" -> fraction); its
    underlying still counts toward the asset targets. Positions not listed are left alone."""
    lp_band: float = Field(default=0.02, gt=0, le=1)
    """An LP position is removed or topped up only when its share of value is more than this
    off its lp_target (0.02 = 2 percentage points)."""


class VolatilityBands(Section):
    """Scale band widths by realized volatility of the smoothed price (crypto needs wider bands)."""

    enabled: bool = False
    """Scale every unit's band by its realized volatility; false: fixed bands."""
    reference_volatility: float = Field(default=0.6, gt=0)
    """Annualised volatility (0.6 = 60%) at which a band keeps its configured width; the width
    is multiplied by realized volatility / this, within floor and cap."""
    floor: float = Field(default=0.5, gt=0)
    """The smallest multiplier of a band's width."""
    cap: float = Field(default=3.0, gt=0)
    """The largest multiplier of a band's width."""
    smoothing: float = Field(default=0.3, gt=0, le=1)
    """EMA weight of the newest price before volatility is measured (1: no smoothing); lower
    values keep a passing quote from widening the bands by itself."""
    min_observations: int = Field(default=10, ge=3)
    """Price points needed before bands are scaled (one is kept per day, or per window_seconds /
    30 for a window under 30 days); until then they keep their configured width."""
    window_seconds: int = Field(default=30 * 86_400, gt=0)
    """How far back realized volatility is measured, in seconds (2592000: 30 days). The keeper
    and the backtest keep this much price history, one point per UTC day (per window_seconds /
    30 under 30 days), so that bands mean the same live and in the backtest."""


class CostGate(Section):
    """Trade only when the estimated benefit beats the plan's cost (strategies/cost_gate.py)."""

    enabled: bool = True
    """Refuse a rebalance whose estimated benefit is under min_benefit_ratio x its cost (gas,
    swap fees and price impact)."""
    benefit_model: Literal["tracking_var", "linear"] = "tracking_var"
    """How the benefit is estimated: "tracking_var" (the value at risk of the drift, before minus
    after the plan) or "linear" (value_per_drift per unit of drift removed)."""
    horizon_days: float = Field(default=30, gt=0)
    """tracking_var: the horizon of the value at risk, in days; a longer one values a correction
    more."""
    z_score: float = Field(default=1.65, gt=0)
    """tracking_var: one-sided confidence of the value at risk, as a z-score (1.65: 95%, 2.33:
    99%)."""
    default_volatility: float = Field(default=0.8, ge=0)
    """tracking_var: annualised volatility (0.8 = 80%) of every unit not listed in
    `volatility`."""
    volatility: dict[str, float] = Field(default_factory=dict)
    """tracking_var: annualised volatility per allocation unit (for example usd = 0.02)."""
    value_per_drift: float = Field(default=0.01, ge=0)
    """linear: the benefit is portfolio value x this x the total absolute drift removed (drift
    in weight fractions)."""
    min_benefit_ratio: float = Field(default=1.0, gt=0)
    """A rebalance goes ahead only when its benefit is at least this many times its cost."""


class Caps(Section):
    """[strategy.caps]: limits on how much a rebalance may trade."""

    max_turnover_fraction: float = Field(default=0.5, gt=0, le=2)
    """The most one rebalance may buy, as a fraction of portfolio value; a larger plan is
    scaled down."""
    max_daily_turnover_fraction: float = Field(default=1.0, gt=0)
    """The most all rebalances of one UTC day may buy, as a fraction of portfolio value."""
    max_price_impact_bps: float = Field(default=100, gt=0)
    """The largest price impact one trade may have, in basis points (100 = 1%); a larger trade
    is cut to the largest size within it."""


class StrategySettings(Section):
    """[strategy]: when to rebalance, and how far."""

    trigger: Literal["threshold", "calendar", "hybrid"] = "hybrid"
    """"threshold": act whenever a unit leaves its band (checked every cycle); "calendar": act
    on the schedule whatever the drift; "hybrid": check on the schedule, act only on a breach."""
    interval_seconds: int | None = Field(default=86_400, gt=0)
    """The calendar and hybrid schedule: seconds between evaluations (86400: daily). Unused by
    the threshold trigger and when `cron` is set."""
    cron: str | None = None
    """The schedule as a cron expression in UTC (for example "0 12 * * 1": Mondays at 12:00);
    replaces interval_seconds when set."""
    band: Literal["absolute", "relative"] = "absolute"
    """How band widths read: "absolute" in weight (0.05 = 5 percentage points either side of
    the target), "relative" as a fraction of the unit's target (0.2 = 20% of it)."""
    band_width: float = Field(default=0.05, gt=0)
    """How far a unit's weight may drift from its target before it breaches (read per `band`)."""
    band_overrides: dict[str, float] = Field(default_factory=dict)
    """Band width per allocation unit, in place of band_width (for example LINK = 0.02)."""
    deadband: float = Field(default=0.005, ge=0, lt=1)
    """A unit whose weight would move by less than this (fraction of portfolio value) is not
    traded."""
    min_trade_value: float = Field(default=0.0, ge=0)
    """The smallest trade, in the numeraire; smaller unit moves are dropped. The larger of this
    and min_trade_fraction x value applies."""
    min_trade_fraction: float = Field(default=0.001, ge=0, lt=1)
    """The smallest trade as a fraction of portfolio value (0.001 = 0.1%)."""
    cooldown_seconds: int = Field(default=3_600, ge=0)
    """The least time between two rebalances, in seconds."""
    rebalance_to: Literal["target", "band_edge", "partial"] = "target"
    """How far a rebalance goes: "target" (back to target), "band_edge" (breached units to the
    nearest edge of their band) or "partial" (partial_fraction of each unit's drift)."""
    partial_fraction: float = Field(default=0.5, gt=0, le=1)
    """With rebalance_to = "partial": the fraction of the drift a rebalance removes."""
    volatility_bands: VolatilityBands = VolatilityBands()
    """Band widths scaled by realized volatility ([strategy.volatility_bands])."""
    cost_gate: CostGate = CostGate()
    """Benefit against cost before any trade ([strategy.cost_gate])."""
    caps: Caps = Caps()
    """Turnover and price-impact limits ([strategy.caps])."""

    @model_validator(mode="after")
    def _schedule(self) -> StrategySettings:
        if self.cron is not None:
            from cronsim import CronSim, CronSimError

            try:
                CronSim(self.cron, datetime.now(UTC))
            except CronSimError as err:
                raise ValueError(f"cron: {self.cron!r} is not a cron expression ({err})") from None
        elif self.trigger != "threshold" and self.interval_seconds is None:
            raise ValueError(
                f"interval_seconds or cron: the {self.trigger} trigger needs a schedule"
            )
        return self

    def width(self, unit: str) -> float:
        return self.band_overrides.get(unit, self.band_width)
