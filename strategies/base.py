"""What every policy shares: the state it remembers, the decision it returns, the protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from bot.portfolio import Valuation

DAY = 86_400


@dataclass(frozen=True, slots=True)
class PricePoint:
    timestamp: int
    prices: tuple[tuple[str, float], ...]  # (unit, value per unit share) for volatility bands


@dataclass(frozen=True, slots=True)
class StrategyState:
    """What a policy remembers between evaluations (the keeper persists it in the journal)."""

    last_evaluation: int | None = None  # timestamp of the last scheduled evaluation
    last_rebalance: int | None = None
    turnover_day: int | None = None  # day number (timestamp // 86400) of `turnover_today`
    turnover_today: float = 0.0  # value traded that day, in the numeraire
    history: tuple[PricePoint, ...] = ()  # newest last

    def turnover_on(self, day: int) -> float:
        return self.turnover_today if self.turnover_day == day else 0.0


@dataclass(frozen=True, slots=True)
class Breach:
    unit: str
    weight: float
    target: float
    drift_abs: float
    drift_rel: float | None
    width: float  # the band it left, in the band's own terms (absolute pp or relative)


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to rebalance and toward which weights, with the reasons in words."""

    act: bool
    reason: str  # one line for people
    skip_reason: (
        str | None
    )  # a short label for metrics when not acting ("in_band", "cooldown", ...)
    breaches: tuple[Breach, ...] = ()
    desired_weights: dict[str, float] = field(default_factory=dict)  # per unit, after trading
    deltas: dict[str, float] = field(
        default_factory=dict
    )  # per unit, numeraire value to buy (+) / sell (-)
    evaluated: bool = True  # False when a calendar said "not now" (state.last_evaluation stays)


class Strategy(Protocol):
    """A policy: pure, deterministic, given the same valuation, state and time."""

    @property
    def name(self) -> str: ...

    def decide(self, view: Valuation, state: StrategyState, now: int) -> Decision: ...
