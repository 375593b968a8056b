"""The planner, pure: from a decision's per-unit value deltas to an ordered Plan of actions (their
types are in bot.types) with exact quotes from bot.amm.

Order of work: LP positions over their target are removed first (their tokens join the wallet),
then swaps (sells netted against buys, routed directly or through hub tokens, a direct trade split
across venues where that pays), then LP positions under target are topped up with an optimal zap.
Every quote is computed against the reserves as the previous actions leave them, so executing the
actions in order reproduces the quotes exactly. Each action carries its minimum output (the quote
less `execution.slippage_bps`), a gas estimate, and its costs split into fees and price impact.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from bot import amm
from bot.portfolio import Valuation, pool_underlying, value_portfolio
from bot.settings import Settings
from bot.types import (
    BPS,
    GWEI,
    NATIVE,
    Action,
    AddLiquidity,
    Plan,
    PoolState,
    RemoveLiquidity,
    Snapshot,
    Swap,
    slippage_floor,
    to_raw,
    to_units,
)

# Router02 gas by hop count (Uniswap's gas snapshots; +71,871 per extra hop), and liquidity calls.
SWAP_GAS = {1: 121_407, 2: 193_278, 3: 265_149, 4: 337_020}
REMOVE_LIQUIDITY_GAS = 140_000
ADD_LIQUIDITY_GAS = 175_000


# --- the simulated market ----------------------------------------------------------------------
@dataclass
class _Market:
    """Reserves and balances as the plan's actions so far leave them."""

    settings: Settings
    states: dict[str, PoolState]
    balances: dict[str, int]
    by_pair: dict[tuple[str, frozenset[str]], str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, state in self.states.items():
            self.by_pair[(state.pool.venue, frozenset((state.pool.token0, state.pool.token1)))] = (
                key
            )

    def pool(self, venue: str, a: str, b: str) -> PoolState | None:
        key = self.by_pair.get((venue, frozenset((a, b))))
        return self.states[key] if key else None

    def reserves(self, state: PoolState, token_in: str) -> tuple[int, int]:
        if token_in == state.pool.token0:
            return state.reserve0, state.reserve1
        return state.reserve1, state.reserve0

    def transfer_fee(self, symbol: str) -> int:
        return self.settings.tokens[symbol].transfer_fee_bps

    def received(self, symbol: str, amount: int) -> int:
        return amount - amount * self.transfer_fee(symbol) // BPS

    def quote(
        self, venue: str, path: Sequence[str], amount_in: int
    ) -> tuple[list[int], list[PoolState]] | None:
        """Amounts at each hop as the router computes them; the first is what reaches the pair."""
        states = []
        for a, b in itertools.pairwise(path):
            state = self.pool(venue, a, b)
            if state is None:
                return None
            states.append(state)
        amounts = [self.received(path[0], amount_in)]
        try:
            for (a, _), state in zip(itertools.pairwise(path), states, strict=True):
                amounts.append(
                    amm.get_amount_out(amounts[-1], *self.reserves(state, a), state.pool.fee_bps)
                )
        except ValueError:
            return None
        return amounts, states

    def apply_swap(
        self,
        path: Sequence[str],
        amounts: Sequence[int],
        states: Sequence[PoolState],
        amount_in: int,
    ) -> int:
        hops = zip(path, states, itertools.pairwise(amounts), strict=False)
        for a, state, (given, got) in hops:
            if a == state.pool.token0:
                new = replace(state, reserve0=state.reserve0 + given, reserve1=state.reserve1 - got)
            else:
                new = replace(state, reserve1=state.reserve1 + given, reserve0=state.reserve0 - got)
            self.states[state.key] = new
        out = self.received(path[-1], amounts[-1])
        self.balances[path[0]] -= amount_in
        self.balances[path[-1]] = self.balances.get(path[-1], 0) + out
        return out


def _after_liquidity(state: PoolState, amount0: int, amount1: int, liquidity: int) -> PoolState:
    """The pair after our mint (positive amounts) or burn (negative): the pending protocol fee
    is minted first, and kLast is reset to the new k when the fee is on, as the pair does."""
    fee_mint = (
        amm.protocol_fee_liquidity(state.reserve0, state.reserve1, state.total_supply, state.k_last)
        if state.fee_on
        else 0
    )
    r0, r1 = state.reserve0 + amount0, state.reserve1 + amount1
    return replace(
        state,
        reserve0=r0,
        reserve1=r1,
        total_supply=state.total_supply + fee_mint + liquidity,
        k_last=r0 * r1 if state.fee_on else state.k_last,
        wallet_lp=state.wallet_lp + liquidity,
    )


# --- venue split ------------------------------------------------------------------------------
def split_amounts(amount: int, pools: Sequence[tuple[int, int, int]]) -> list[int]:
    """Closed-form split of `amount` across constant-product pools of the same pair.

    Pools are (reserve_in, reserve_out, fee_bps). The optimum equalises marginal output
    gamma*a*b/(a + gamma*x)^2; pools enter in order of their marginal price gamma*b/a at zero.
    Returns integer inputs per pool (summing to `amount`).
    """
    if amount <= 0 or not pools:
        return [0] * len(pools)
    gammas = [(BPS - fee) / BPS for _, _, fee in pools]
    order = sorted(range(len(pools)), key=lambda i: -gammas[i] * pools[i][1] / pools[i][0])
    active: list[int] = []
    inv_lambda = 0.0
    for position, i in enumerate(order):
        candidate = [*active, i]
        numerator = amount + sum(pools[j][0] / gammas[j] for j in candidate)
        denominator = sum(math.sqrt(pools[j][0] * pools[j][1] / gammas[j]) for j in candidate)
        inv_lambda = numerator / denominator
        active = candidate
        if position + 1 < len(order):
            nxt = order[position + 1]
            # the next pool joins only if its marginal price at zero beats the common marginal
            if gammas[nxt] * pools[nxt][1] / pools[nxt][0] <= 1 / inv_lambda**2:
                break
    shares = [0.0] * len(pools)
    for j in active:
        a, b, _ = pools[j]
        shares[j] = max((math.sqrt(gammas[j] * a * b) * inv_lambda - a) / gammas[j], 0.0)
    total = sum(shares)
    inputs = [int(amount * s / total) if total else 0 for s in shares]
    inputs[order[0]] += amount - sum(inputs)  # rounding remainder to the best pool
    return inputs


def split_output(amount: int, pools: Sequence[tuple[int, int, int]]) -> tuple[list[int], int]:
    """The better of the closed-form split and the best single pool: (inputs, total output)."""

    def total(inputs: Sequence[int]) -> int:
        return sum(
            amm.get_amount_out(x, a, b, f)
            for x, (a, b, f) in zip(inputs, pools, strict=True)
            if x > 0
        )

    candidates = [split_amounts(amount, pools)]
    for i in range(len(pools)):
        single = [0] * len(pools)
        single[i] = amount
        candidates.append(single)
    best = max(candidates, key=total)
    return best, total(best)


# --- the planner ------------------------------------------------------------------------------
@dataclass
class _Planner:
    snapshot: Snapshot
    view: Valuation
    settings: Settings
    gas_price_wei: int
    market: _Market
    actions: list[Action] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def price(self, symbol: str) -> float:
        return self.view.prices[symbol].spot

    def decimals(self, symbol: str) -> int:
        return self.settings.tokens[symbol].decimals

    def value(self, symbol: str, raw: int) -> float:
        return to_units(raw, self.decimals(symbol)) * self.price(symbol)

    def raw(self, symbol: str, value: float) -> int:
        return to_raw(value / self.price(symbol), self.decimals(symbol))

    def gas_value(self, gas: int) -> float:
        weth = self.settings.weth_symbol()
        eth_price = self.view.prices[NATIVE].spot if weth else 0.0
        return gas * self.gas_price_wei / 1e18 * eth_price

    def min_out(self, amount: int) -> int:
        return slippage_floor(amount, self.settings.execution.slippage_bps)

    # --- LP positions -------------------------------------------------------------------------
    def remove_over_target_lp(self) -> None:
        targets = self._lp_targets()
        band = self.settings.portfolio.lp_band
        for position in self.view.lp_positions:
            target = targets.get(position.key)
            if target is None:
                continue
            weight = position.value / self.view.total_value
            if weight <= target + band:
                continue
            state = self.market.states[position.key]
            liquidity = int(position.liquidity * (1 - target / weight))
            amount0, amount1 = pool_underlying(state, liquidity)
            self.market.states[position.key] = _after_liquidity(
                state, -amount0, -amount1, -liquidity
            )
            pool = state.pool
            got0 = self.market.received(pool.token0, amount0)
            got1 = self.market.received(pool.token1, amount1)
            self.market.balances[pool.token0] += got0
            self.market.balances[pool.token1] += got1
            self.actions.append(
                RemoveLiquidity(
                    pool.key,
                    pool.venue,
                    pool.token0,
                    pool.token1,
                    liquidity,
                    got0,
                    got1,
                    self.min_out(amount0),
                    self.min_out(amount1),
                    REMOVE_LIQUIDITY_GAS,
                )
            )
            self.notes.append(
                f"{pool.key}: LP at {weight:.2%} of value, target {target:.2%}: remove {liquidity}"
            )

    def add_under_target_lp(self) -> None:
        targets = self._lp_targets()
        band = self.settings.portfolio.lp_band
        current = {p.key: p.value for p in self.view.lp_positions}
        for key, target in targets.items():
            weight = current.get(key, 0.0) / self.view.total_value
            if weight >= target - band:
                continue
            state = self.market.states[key]
            pool = state.pool
            need = (target - weight) * self.view.total_value
            # zap from whichever side the wallet holds more of
            side = max(
                (pool.token0, pool.token1),
                key=lambda s: self.value(s, self.market.balances.get(s, 0)),
            )
            amount = min(self.raw(side, need), self.market.balances.get(side, 0))
            if (
                amount <= 0
                or self.market.transfer_fee(pool.token0)
                or self.market.transfer_fee(pool.token1)
            ):
                self.notes.append(f"{key}: LP under target, but nothing suitable to zap with")
                continue
            other = pool.token1 if side == pool.token0 else pool.token0
            reserve_in, _ = self.market.reserves(state, side)
            amount = self._zap_within_impact_cap(
                pool.venue, side, other, amount, reserve_in, pool.fee_bps
            )
            swap_in = amm.zap_swap_amount(amount, reserve_in, pool.fee_bps)
            got = self._swap_on(pool.venue, (side, other), swap_in) if swap_in > 0 else None
            if got is None:
                continue
            state = self.market.states[key]
            desired = {side: amount - swap_in, other: got}
            d0, d1 = desired[pool.token0], desired[pool.token1]
            a0, a1 = amm.add_liquidity_amounts(d0, d1, state.reserve0, state.reserve1)
            minted = amm.liquidity_minted(
                a0,
                a1,
                state.reserve0,
                state.reserve1,
                state.total_supply,
                state.k_last,
                state.fee_on,
            )
            self.market.states[key] = _after_liquidity(state, a0, a1, minted)
            self.market.balances[pool.token0] -= a0
            self.market.balances[pool.token1] -= a1
            self.actions.append(
                AddLiquidity(
                    key,
                    pool.venue,
                    pool.token0,
                    pool.token1,
                    d0,
                    d1,
                    a0,
                    a1,
                    self.min_out(a0),
                    self.min_out(a1),
                    minted,
                    ADD_LIQUIDITY_GAS,
                )
            )

    def _zap_within_impact_cap(
        self, venue: str, side: str, other: str, amount: int, reserve_in: int, fee_bps: int
    ) -> int:
        """The largest deposit (up to `amount`) whose zap swap stays within the impact cap.

        Capping the swap alone would leave the deposit unbalanced; the deposit shrinks instead.
        """
        cap = self.settings.strategy.caps.max_price_impact_bps / BPS

        def impact(deposit: int) -> float:
            quoted = self.market.quote(
                venue, (side, other), amm.zap_swap_amount(deposit, reserve_in, fee_bps)
            )
            return 1.0 if quoted is None else self._impact(quoted[0], quoted[1], (side, other))

        if impact(amount) <= cap:
            return amount
        lo, hi = 0, amount
        for _ in range(60):
            mid = (lo + hi + 1) // 2
            if impact(mid) <= cap:
                lo = mid
            else:
                hi = mid - 1
        self.notes.append(
            f"zap into {venue} {side}/{other}: deposit cut to {lo} by the price impact cap"
        )
        return lo

    def _lp_targets(self) -> dict[str, float]:
        out = {}
        for key, target in self.settings.portfolio.lp_targets.items():
            venue, _, pair = key.partition(":")
            for state in self.market.states.values():
                if state.pool.venue == venue and frozenset(pair.split("/")) == frozenset(
                    (state.pool.token0, state.pool.token1)
                ):
                    out[state.key] = target
        return out

    # --- swaps --------------------------------------------------------------------------------
    def asset_deltas(
        self, unit_deltas: Mapping[str, float]
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """Turn per-unit deltas into per-asset sells and buys (numeraire values)."""
        sells: list[tuple[str, float]] = []
        buys: list[tuple[str, float]] = []
        for unit, delta in unit_deltas.items():
            members = [
                m
                for m in self.settings.portfolio.buckets.get(unit, [unit])
                if m != NATIVE and m in self.settings.tokens
            ]
            if not members:
                self.notes.append(f"{unit}: only native ETH, which the planner leaves for gas")
                continue
            if delta > 0:
                # buy the member with the deepest market
                best = max(members, key=lambda m: self.view.prices[m].depth)
                buys.append((best, delta))
                continue
            held = {m: self.value(m, self.market.balances.get(m, 0)) for m in members}
            total = sum(held.values())
            want = -delta
            if total < want:
                self.notes.append(
                    f"{unit}: sell {want:,.2f} but only {total:,.2f} is in the wallet "
                    "(the rest is in LP positions)"
                )
                want = total
            for member, value in held.items():
                if value > 0:
                    sells.append((member, want * value / total))
        return sells, buys

    def match(
        self, sells: list[tuple[str, float]], buys: list[tuple[str, float]]
    ) -> list[tuple[str, str, float]]:
        """Pair sells with buys, preferring pairs that share a pool (one hop, one fee)."""
        left = dict(sells)
        matches: dict[tuple[str, str], float] = {}
        for buy, need in sorted(buys, key=lambda b: -b[1]):

            def direct(sell: str, buy: str = buy) -> bool:
                return any(self.market.pool(v, sell, buy) for v in self.settings.venues)

            for sell in sorted(left, key=lambda s: (not direct(s), -left[s])):
                if need <= 0:
                    break
                take = min(need, left[sell])
                if take <= 0:
                    continue
                matches[(sell, buy)] = matches.get((sell, buy), 0.0) + take
                left[sell] -= take
                need -= take
        return [(sell, buy, value) for (sell, buy), value in matches.items()]

    def candidate_paths(self, a: str, b: str) -> list[tuple[str, ...]]:
        hubs = [
            h
            for h in self.settings.execution.hubs
            if h not in (a, b) and not self.market.transfer_fee(h)
        ]
        paths: list[tuple[str, ...]] = [(a, b)]
        paths += [(a, h, b) for h in hubs]
        if self.settings.execution.max_hops >= 3:
            paths += [(a, h1, h2, b) for h1 in hubs for h2 in hubs if h1 != h2]
        return [p for p in paths if len(p) - 1 <= self.settings.execution.max_hops]

    def swap(self, sell: str, buy: str, value: float) -> None:
        """Trade `value` of `sell` into `buy` as cheaply as the pools allow, net of gas.

        The amount is cut into chunks, each sent along the route (direct or through one hub,
        any venue per hop) that delivers the most for it right then, less the gas of any leg
        not used yet. That equalises marginal prices across all routes, as the optimum does.
        A direct trade also gets the closed-form venue split; the better of the two is used.
        """
        amount = min(self.raw(sell, value), self.market.balances.get(sell, 0))
        if amount <= 0:
            return
        routes = self._routes(sell, buy)
        if not routes:
            self.notes.append(f"no route from {sell} to {buy}")
            return
        best = self._allocate(routes, amount)
        closed_form = self._closed_form_split(sell, buy, amount)
        if closed_form is not None and (best is None or closed_form[0] > best[0]):
            best = closed_form
        if best is None:
            self.notes.append(f"no route from {sell} to {buy} can take {amount}")
            return
        self._execute_flows(buy, best[1])

    def _routes(self, sell: str, buy: str) -> list[tuple[tuple[str, str, str], ...]]:
        """Routes as (venue, token in, token out) hops: direct or via hubs, any venue per hop."""
        paths = self.candidate_paths(sell, buy)
        routes: list[tuple[tuple[str, str, str], ...]] = []
        for path in paths:
            options = [
                [v for v in self.settings.venues if self.market.pool(v, a, b)]
                for a, b in itertools.pairwise(path)
            ]
            for venues in itertools.product(*options):
                routes.append(
                    tuple(
                        (v, a, b)
                        for v, (a, b) in zip(venues, itertools.pairwise(path), strict=True)
                    )
                )
        return routes

    def _allocate(
        self, routes: list[tuple[tuple[str, str, str], ...]], amount: int, chunks: int = 64
    ) -> tuple[float, dict[tuple[int, str, str, str], int]] | None:
        """Greedy chunked routing on a scratch copy of the pools: (net value, flows by hop)."""
        scratch = dict(self.market.states)
        by_pair = self.market.by_pair
        flows: dict[tuple[int, str, str, str], int] = {}
        active: set[tuple[str, str, str]] = set()
        buy = routes[0][-1][2]
        delivered = 0
        step = max(amount // chunks, 1)
        sent = 0
        while sent < amount:
            gross = min(step, amount - sent)
            best: tuple[float, tuple[tuple[str, str, str], ...], list[int]] | None = None
            for route in routes:
                amounts = [self.market.received(route[0][1], gross)]
                try:
                    for venue, a, b in route:
                        state = scratch[by_pair[(venue, frozenset((a, b)))]]
                        reserve_in, reserve_out = self.market.reserves(state, a)
                        amounts.append(
                            amm.get_amount_out(
                                amounts[-1], reserve_in, reserve_out, state.pool.fee_bps
                            )
                        )
                except ValueError:
                    continue
                new_legs = sum(1 for hop in route if hop not in active)
                score = self.value(buy, self.market.received(buy, amounts[-1])) - self.gas_value(
                    SWAP_GAS[1] * new_legs
                )
                if best is None or score > best[0]:
                    best = (score, route, amounts)
            if best is None:
                return None
            _, route, amounts = best
            for layer, ((venue, a, b), given, got) in enumerate(
                zip(route, amounts, amounts[1:], strict=False)
            ):
                key = by_pair[(venue, frozenset((a, b)))]
                state = scratch[key]
                if a == state.pool.token0:
                    scratch[key] = replace(
                        state, reserve0=state.reserve0 + given, reserve1=state.reserve1 - got
                    )
                else:
                    scratch[key] = replace(
                        state, reserve1=state.reserve1 + given, reserve0=state.reserve0 - got
                    )
                # layer 0 flows are what leaves the wallet; later ones what a hub passes on
                flows[(layer, venue, a, b)] = flows.get((layer, venue, a, b), 0) + (
                    gross if layer == 0 else given
                )
                active.add((venue, a, b))
            delivered += self.market.received(buy, amounts[-1])
            sent += gross
        return self.value(buy, delivered) - self.gas_value(SWAP_GAS[1] * len(active)), flows

    def _closed_form_split(
        self, sell: str, buy: str, amount: int
    ) -> tuple[float, dict[tuple[int, str, str, str], int]] | None:
        venues = [v for v in self.settings.venues if self.market.pool(v, sell, buy)]
        if len(venues) < 2 or not self.settings.execution.split_venues:
            return None
        entering = self.market.received(sell, amount)
        pools = []
        for venue in venues:
            state = self.market.pool(venue, sell, buy)
            assert state is not None
            pools.append((*self.market.reserves(state, sell), state.pool.fee_bps))
        try:
            inputs, out = split_output(entering, pools)
        except ValueError:
            return None
        used = [(v, x) for v, x in zip(venues, inputs, strict=True) if x > 0]
        gross = [x * amount // entering for _, x in used]
        gross[0] += amount - sum(gross)
        flows = {(0, v, sell, buy): g for (v, _), g in zip(used, gross, strict=True)}
        net = self.value(buy, self.market.received(buy, out)) - self.gas_value(
            SWAP_GAS[1] * len(used)
        )
        return net, flows

    def _execute_flows(self, buy: str, flows: dict[tuple[int, str, str, str], int]) -> None:
        """Turn allocated flows into swaps, layer by layer; a hub passes on what it received."""
        layers = max(k[0] for k in flows) + 1
        # One route on one venue end to end: one multi-hop router call is cheaper in gas.
        hops = sorted(flows)
        if len(hops) == layers and len({venue for _, venue, _, _ in hops}) == 1:
            path = (hops[0][2], *(b for _, _, _, b in hops))
            self._swap_on(hops[0][1], path, flows[hops[0]])
            return
        received: dict[str, int] = {}  # what the previous layer delivered, by token
        for layer in range(layers):
            legs = {k: v for k, v in flows.items() if k[0] == layer}
            delivered: dict[str, int] = {}
            for token in {a for _, _, a, _ in legs}:
                mine = [(k, v) for k, v in legs.items() if k[2] == token]
                planned = sum(v for _, v in mine)
                # the first layer sends what was allocated; later ones what actually arrived
                available = planned if layer == 0 else received.get(token, 0)
                inputs = [v * available // planned for _, v in mine]
                inputs[0] += available - sum(inputs)
                for ((_, venue, a, b), _), given in zip(mine, inputs, strict=True):
                    got = self._swap_on(venue, (a, b), given) if given > 0 else None
                    if got and b != buy:
                        delivered[b] = delivered.get(b, 0) + got
            received = delivered

    def _swap_on(self, venue: str, path: tuple[str, ...], amount: int) -> int | None:
        quoted = self.market.quote(venue, path, amount)
        if quoted is None:
            return None
        cap = self.settings.strategy.caps.max_price_impact_bps / BPS
        if self._impact(quoted[0], quoted[1], path) > cap:
            lo, hi = 0, amount
            for _ in range(40):  # largest amount within the impact cap
                mid = (lo + hi + 1) // 2
                q = self.market.quote(venue, path, mid)
                if q is not None and self._impact(q[0], q[1], path) <= cap:
                    lo = mid
                else:
                    hi = mid - 1
            self.notes.append(
                f"{'/'.join(path)} on {venue}: cut from {amount} to {lo} to keep price impact "
                f"under {cap:.2%}"
            )
            amount = lo
            if amount <= 0:
                return None
            quoted = self.market.quote(venue, path, amount)
            assert quoted is not None
        amounts, states = quoted
        fee_cost, impact_cost = self._costs(amounts, states, path)
        value_in = self.value(path[0], amount)
        out = self.market.apply_swap(path, amounts, states, amount)
        fee_on_transfer = bool(
            self.market.transfer_fee(path[0]) or self.market.transfer_fee(path[-1])
        )
        self.actions.append(
            Swap(
                venue,
                path,
                tuple(s.key for s in states),
                amount,
                out,
                self.min_out(out),
                fee_on_transfer,
                SWAP_GAS[len(path) - 1],
                value_in,
                fee_cost,
                impact_cost,
            )
        )
        return out

    def _mid_out(
        self, amounts: Sequence[int], states: Sequence[PoolState], path: Sequence[str]
    ) -> tuple[float, float]:
        """Output at the pools' mid prices without fees, and with fees but no impact."""
        mid = float(amounts[0])
        fee_only = float(amounts[0])
        for (a, _), state in zip(itertools.pairwise(path), states, strict=True):
            reserve_in, reserve_out = self.market.reserves(state, a)
            mid *= reserve_out / reserve_in
            fee_only *= reserve_out / reserve_in * (BPS - state.pool.fee_bps) / BPS
        return mid, fee_only

    def _impact(
        self, amounts: Sequence[int], states: Sequence[PoolState], path: Sequence[str]
    ) -> float:
        _, fee_only = self._mid_out(amounts, states, path)
        return 1 - amounts[-1] / fee_only if fee_only else 1.0

    def _costs(
        self, amounts: Sequence[int], states: Sequence[PoolState], path: Sequence[str]
    ) -> tuple[float, float]:
        mid, fee_only = self._mid_out(amounts, states, path)
        out_symbol = path[-1]
        decimals = self.decimals(out_symbol)
        price = self.price(out_symbol)
        return (
            to_units(mid - fee_only, decimals) * price,
            to_units(fee_only - amounts[-1], decimals) * price,
        )

    # --- result -------------------------------------------------------------------------------
    def finish(self, now: int) -> Plan:
        gas = sum(a.gas for a in self.actions)
        fee_cost = math.fsum(a.fee_cost for a in self.actions if isinstance(a, Swap))
        impact_cost = math.fsum(a.impact_cost for a in self.actions if isinstance(a, Swap))
        post = self.post_trade_snapshot()
        post_view = value_portfolio(post, self.settings)
        return Plan(
            block_number=self.snapshot.block_number,
            deadline=now + self.settings.execution.deadline_seconds,
            actions=tuple(self.actions),
            gas=gas,
            gas_price_wei=self.gas_price_wei,
            fee_cost=fee_cost,
            impact_cost=impact_cost,
            gas_cost=self.gas_value(gas),
            post_weights=post_view.weights,
            post_value=post_view.total_value,
            notes=tuple(self.notes),
            post_snapshot=post,
        )

    def post_trade_snapshot(self) -> Snapshot:
        balances = tuple((s, self.market.balances.get(s, 0)) for s, _ in self.snapshot.balances)
        pools = tuple(self.market.states[s.key] for s in self.snapshot.pools)
        return replace(self.snapshot, balances=balances, pools=pools, history=())


def gas_price(snapshot: Snapshot, settings: Settings) -> int:
    """What a transaction is expected to pay per gas: the base fee plus the configured tip."""
    return snapshot.base_fee + int(settings.execution.priority_fee_gwei * GWEI)


def plan(
    snapshot: Snapshot,
    view: Valuation,
    settings: Settings,
    unit_deltas: Mapping[str, float],
    now: int,
    gas_price_wei: int | None = None,
) -> Plan:
    """An ordered, exactly quoted Plan that moves the wallet by `unit_deltas` (numeraire values)."""
    market = _Market(settings, {s.key: s for s in snapshot.pools}, dict(snapshot.balances))
    planner = _Planner(
        snapshot,
        view,
        settings,
        gas_price(snapshot, settings) if gas_price_wei is None else gas_price_wei,
        market,
    )
    planner.remove_over_target_lp()
    sells, buys = planner.asset_deltas(unit_deltas)
    for sell, buy, value in planner.match(sells, buys):
        planner.swap(sell, buy, value)
    planner.add_under_target_lp()
    return planner.finish(now)
