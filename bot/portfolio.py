"""Valuation, pure: prices along the deepest pool path, TWAP guard, LP decomposition, notional
exposure, buckets, drift and impermanent loss. No I/O: a Snapshot and Settings in, a Valuation out.

Money stays integer (raw units) up to this module; values, weights and prices are floats from
here on, for analytics only. Weights are shares of notional exposure: a token with notional 2.0
(a 2x leveraged token) counts twice its market value, and weights are normalised over the total
notional so that they compare with targets that sum to 1.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bot import amm
from bot.errors import DataError
from bot.settings import Settings
from bot.types import NATIVE, PoolObservation, PoolState, Snapshot, to_units

Q112 = 2**112
UINT256 = 2**256


@dataclass(frozen=True, slots=True)
class PoolPrice:
    """A pool's price of token0 in token1 (whole units), spot and over the TWAP window."""

    key: str
    spot: float
    twap: float | None
    deviation: float | None  # spot / twap - 1
    flagged: str | None  # why the guard distrusts this pool now, if it does


@dataclass(frozen=True, slots=True)
class Price:
    symbol: str
    spot: float  # numeraire per whole token
    twap: float | None
    path: tuple[str, ...]  # pool keys from the numeraire to this token
    depth: float  # the thinnest pool on the path, as its value in the numeraire
    flagged: tuple[str, ...]  # pools on the path the guard distrusts


@dataclass(frozen=True, slots=True)
class LpPosition:
    key: str
    liquidity: int
    share: float  # of the pool's LP supply, after the pending protocol-fee mint
    token0: str
    token1: str
    amount0: int  # raw, exactly what removeLiquidity would pay now
    amount1: int
    value: float
    entry_amount0: int | None
    entry_amount1: int | None
    hold_value: float | None  # the entry amounts at today's prices
    il_vs_hold: float | None  # value / hold_value - 1: IL net of the fees earned
    il_price_only: float | None  # 2*sqrt(r)/(1+r) - 1 from the price move alone


@dataclass(frozen=True, slots=True)
class AssetExposure:
    asset: str
    unit: str  # the bucket it counts toward, or itself
    raw: int  # wallet balance plus the LP underlying, in raw units
    amount: float
    in_lp: float  # of `amount`, how much sits in LP positions
    value: float  # market value in the numeraire
    notional: float  # value x the asset's notional multiplier
    weight: float  # notional / total notional


@dataclass(frozen=True, slots=True)
class UnitAllocation:
    unit: str
    members: tuple[str, ...]
    notional: float
    weight: float
    target: float
    drift_abs: float  # weight - target, as a fraction (0.05 = 5 percentage points)
    drift_rel: float | None  # drift_abs / target; None where the target is 0


@dataclass(frozen=True, slots=True)
class Valuation:
    block_number: int
    timestamp: int
    numeraire: str
    total_value: float
    total_notional: float
    prices: Mapping[str, Price]
    pools: Mapping[str, PoolPrice]
    assets: tuple[AssetExposure, ...]
    units: tuple[UnitAllocation, ...]
    lp_positions: tuple[LpPosition, ...]

    def unit(self, name: str) -> UnitAllocation:
        return next(u for u in self.units if u.unit == name)

    @property
    def weights(self) -> dict[str, float]:
        """Each unit's weight, by unit name."""
        return {u.unit: u.weight for u in self.units}

    @property
    def flagged_pools(self) -> dict[str, str]:
        return {key: p.flagged for key, p in self.pools.items() if p.flagged}


# --- TWAP ----------------------------------------------------------------------------------
def cumulative_prices(
    reserve0: int, reserve1: int, block_timestamp_last: int, price0: int, price1: int, now: int
) -> tuple[int, int]:
    """The pair's cumulative prices as of `now` (UniswapV2OracleLibrary.currentCumulativePrices).

    Between trades the stored accumulators are stale; the counterfactual adds the current
    reserve ratio for the seconds since the last update. Wraps modulo 2**256, as the pair does.
    """
    elapsed = (now - block_timestamp_last) % 2**32
    if elapsed and reserve0 and reserve1:
        price0 = (price0 + (reserve1 * Q112 // reserve0) * elapsed) % UINT256
        price1 = (price1 + (reserve0 * Q112 // reserve1) * elapsed) % UINT256
    return price0, price1


def twap_price0(old: PoolObservation, state: PoolState, now: int) -> float | None:
    """Time-weighted price of token0 in raw token1 from `old` to `now` (None: no time passed)."""
    if now <= old.timestamp:
        return None
    start, _ = cumulative_prices(
        old.reserve0,
        old.reserve1,
        old.block_timestamp_last,
        old.price0_cumulative_last,
        old.price1_cumulative_last,
        old.timestamp,
    )
    end, _ = cumulative_prices(
        state.reserve0,
        state.reserve1,
        state.block_timestamp_last,
        state.price0_cumulative_last,
        state.price1_cumulative_last,
        now,
    )
    return ((end - start) % UINT256) / (now - old.timestamp) / Q112


# --- prices --------------------------------------------------------------------------------
def pool_prices(snapshot: Snapshot, settings: Settings) -> dict[str, PoolPrice]:
    history = {obs.key: obs for obs in snapshot.history}
    bound = settings.valuation.max_twap_deviation
    out: dict[str, PoolPrice] = {}
    for state in snapshot.pools:
        pool = state.pool
        if state.reserve0 == 0 or state.reserve1 == 0:
            raise DataError(f"pool {pool.key} ({pool.address}) has a zero reserve: it cannot price")
        scale = (
            10 ** settings.tokens[pool.token0].decimals
            / 10 ** settings.tokens[pool.token1].decimals
        )
        spot = state.reserve1 / state.reserve0 * scale
        old = history.get(pool.key)
        raw_twap = twap_price0(old, state, snapshot.timestamp) if old else None
        twap = raw_twap * scale if raw_twap else None
        deviation = spot / twap - 1 if twap else None
        flagged = None
        if deviation is not None and abs(deviation) > bound:
            flagged = f"spot is {deviation:+.2%} off the TWAP (bound {bound:.2%})"
        elif twap is None and settings.valuation.missing_twap == "refuse":
            flagged = "no TWAP for this pool (valuation.missing_twap = refuse)"
        stale_after = settings.valuation.stale_pool_seconds
        idle = snapshot.timestamp - state.block_timestamp_last
        if (
            flagged is None
            and stale_after
            and idle > stale_after
            and settings.valuation.stale_pool == "refuse"
        ):
            flagged = f"no trade for {idle / 3600:.1f} h (valuation.stale_pool = refuse)"
        out[pool.key] = PoolPrice(pool.key, spot, twap, deviation, flagged)
    return out


def token_prices(
    snapshot: Snapshot, settings: Settings, pools: Mapping[str, PoolPrice]
) -> dict[str, Price]:
    """Every token's price in the numeraire along its deepest path (the widest bottleneck).

    The numeraire token is worth exactly 1; each pool carries a price from a priced token to
    its partner, and a path is as deep as its thinnest pool's value.
    """
    numeraire = settings.numeraire_token()
    decimals = {s: t.decimals for s, t in settings.tokens.items()}
    states = {state.key: state for state in snapshot.pools}
    prices: dict[str, Price] = {}
    # Entries sort by depth (deepest first), then by hops (shortest first among equals).
    frontier: list[tuple[float, int, str, float, float | None, tuple[str, ...], tuple[str, ...]]]
    frontier = [(-math.inf, 0, numeraire, 1.0, 1.0, (), ())]
    while frontier:
        neg_depth, _, symbol, spot, twap, path, flagged = heapq.heappop(frontier)
        if symbol in prices:
            continue
        prices[symbol] = Price(symbol, spot, twap, path, -neg_depth, flagged)
        for key, state in states.items():
            pool = state.pool
            if symbol not in (pool.token0, pool.token1):
                continue
            other = pool.token1 if symbol == pool.token0 else pool.token0
            if other in prices:
                continue
            quote = pools[key]
            # price of `other` in the numeraire = price of `symbol` x (symbol per other)
            if symbol == pool.token0:
                ratio, twap_ratio = 1 / quote.spot, (1 / quote.twap if quote.twap else None)
                reserve = state.reserve0
            else:
                ratio, twap_ratio = quote.spot, quote.twap
                reserve = state.reserve1
            side_value = to_units(reserve, decimals[symbol]) * spot
            depth = min(-neg_depth, 2 * side_value)
            other_twap = twap * twap_ratio if twap is not None and twap_ratio else None
            other_flags = (*flagged, key) if quote.flagged else flagged
            heapq.heappush(
                frontier,
                (-depth, len(path) + 1, other, spot * ratio, other_twap, (*path, key), other_flags),
            )
    missing = [s for s in settings.tokens if s not in prices]
    if missing:
        raise DataError(
            f"token {missing[0]} has no pool path to the numeraire token {numeraire}: "
            "add a pool that connects it"
        )
    weth = settings.weth_symbol()
    if weth is not None:
        prices[NATIVE] = replace(prices[weth], symbol=NATIVE)  # native ETH trades as WETH
    return prices


# --- LP positions ----------------------------------------------------------------------------
def pool_underlying(state: PoolState, liquidity: int) -> tuple[int, int]:
    """(amount0, amount1) that burning `liquidity` of the pool pays, as `amm.lp_underlying`."""
    return amm.lp_underlying(
        liquidity,
        state.reserve0,
        state.reserve1,
        state.total_supply,
        state.k_last,
        state.fee_on,
    )


def lp_positions(
    snapshot: Snapshot,
    settings: Settings,
    prices: Mapping[str, Price],
    pools: Mapping[str, PoolPrice],
) -> tuple[LpPosition, ...]:
    entries = {}
    for configured in settings.portfolio.lp_entries:
        venue, _, pair = configured.pool.partition(":")
        entries[(venue, frozenset(pair.split("/")))] = configured
    decimals = {s: t.decimals for s, t in settings.tokens.items()}
    positions = []
    for state in snapshot.pools:
        if state.wallet_lp == 0:
            continue
        pool = state.pool
        amount0, amount1 = pool_underlying(state, state.wallet_lp)
        supply = state.total_supply + (
            amm.protocol_fee_liquidity(
                state.reserve0, state.reserve1, state.total_supply, state.k_last
            )
            if state.fee_on
            else 0
        )
        p0, p1 = prices[pool.token0].spot, prices[pool.token1].spot
        d0, d1 = decimals[pool.token0], decimals[pool.token1]
        value = to_units(amount0, d0) * p0 + to_units(amount1, d1) * p1
        entry = entries.get((pool.venue, frozenset((pool.token0, pool.token1))))
        hold_value = il_vs_hold = il_price = None
        entry0 = entry1 = None
        if entry is not None:
            # lp_entries are written in pair order: amount0 is token0's
            entry0, entry1 = entry.amount0, entry.amount1
            hold_value = to_units(entry0, d0) * p0 + to_units(entry1, d1) * p1
            il_vs_hold = value / hold_value - 1
            entry_price = to_units(entry1, d1) / to_units(entry0, d0)
            # the price move the pool itself saw, not the (maybe deeper) valuation path's
            il_price = amm.impermanent_loss(pools[pool.key].spot / entry_price)
        positions.append(
            LpPosition(
                key=pool.key,
                liquidity=state.wallet_lp,
                share=state.wallet_lp / supply,
                token0=pool.token0,
                token1=pool.token1,
                amount0=amount0,
                amount1=amount1,
                value=value,
                entry_amount0=entry0,
                entry_amount1=entry1,
                hold_value=hold_value,
                il_vs_hold=il_vs_hold,
                il_price_only=il_price,
            )
        )
    return tuple(positions)


# --- the whole view --------------------------------------------------------------------------
def value_portfolio(snapshot: Snapshot, settings: Settings) -> Valuation:
    pools = pool_prices(snapshot, settings)
    prices = token_prices(snapshot, settings, pools)
    positions = lp_positions(snapshot, settings, prices, pools)

    raw: dict[str, int] = dict(snapshot.balances)
    in_lp: dict[str, int] = dict.fromkeys(raw, 0)
    if settings.weth_symbol() is not None:
        raw[NATIVE] = snapshot.eth_balance
        in_lp[NATIVE] = 0
    for position in positions:
        for symbol, amount in (
            (position.token0, position.amount0),
            (position.token1, position.amount1),
        ):
            raw[symbol] += amount
            in_lp[symbol] += amount
    # The non-trading account (the keeper wallet in vault mode) counts too.
    states = {state.key: state for state in snapshot.pools}
    for name, amount in snapshot.other_holdings:
        if name in states:
            state = states[name]
            underlying = pool_underlying(state, amount)
            for symbol, part in zip(
                (state.pool.token0, state.pool.token1), underlying, strict=True
            ):
                raw[symbol] += part
                in_lp[symbol] += part
        elif name in raw:
            raw[name] += amount

    def decimals(asset: str) -> int:
        return 18 if asset == NATIVE else settings.tokens[asset].decimals

    def notional_of(asset: str) -> float:
        return 1.0 if asset == NATIVE else settings.tokens[asset].notional

    values = {a: to_units(raw[a], decimals(a)) * prices[a].spot for a in raw}
    notionals = {a: values[a] * notional_of(a) for a in raw}
    total_value = math.fsum(values.values())
    total_notional = math.fsum(notionals.values())
    if total_notional <= 0:
        raise DataError("the wallet holds nothing of value: there is no allocation to measure")

    assets = tuple(
        AssetExposure(
            asset=a,
            unit=settings.unit_of(a),
            raw=raw[a],
            amount=to_units(raw[a], decimals(a)),
            in_lp=to_units(in_lp[a], decimals(a)),
            value=values[a],
            notional=notionals[a],
            weight=notionals[a] / total_notional,
        )
        for a in raw
    )
    members: dict[str, list[str]] = {}
    for exposure in assets:
        members.setdefault(exposure.unit, []).append(exposure.asset)
    for unit in settings.portfolio.targets:
        members.setdefault(unit, list(settings.portfolio.buckets.get(unit, [])))
    units = []
    for unit, names in members.items():
        notional = math.fsum(notionals.get(a, 0.0) for a in names)
        weight = notional / total_notional
        target = settings.portfolio.targets.get(unit, 0.0)
        drift = weight - target
        units.append(
            UnitAllocation(
                unit=unit,
                members=tuple(names),
                notional=notional,
                weight=weight,
                target=target,
                drift_abs=drift,
                drift_rel=drift / target if target > 0 else None,
            )
        )
    return Valuation(
        block_number=snapshot.block_number,
        timestamp=snapshot.timestamp,
        numeraire=settings.valuation.numeraire,
        total_value=total_value,
        total_notional=total_notional,
        prices=prices,
        pools=pools,
        assets=assets,
        units=tuple(units),
        lp_positions=positions,
    )
