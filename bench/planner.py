"""The planner's gas-free cost against the convex routing optimum, on generated scenarios.

Each scenario has 5 to 30 tokens plus the WETH and USDC hubs on two venues of different depths,
and a wallet drifted at random from random targets. For each, in one run:
  - the planner's plan (gas price 0), and its cost: the reference value of what it gave up;
  - the convex optimum (bench/optimum.py) for achieving the same net changes through the same
    pools, and the solver's time;
  - a naive baseline (every sell to WETH, then WETH to every buy, all on one venue) and the
    optimum for its own net changes.
Prints a line per scenario, then `median <ratio> worst <ratio> naive-median <ratio>` last.

    .venv/bin/python bench/planner.py [--scenarios 24] [--seed 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from optimum import CfmmPool, optimal_cost

from bot import amm
from bot.planner import plan
from bot.portfolio import value_portfolio
from bot.settings import Settings
from bot.types import Address, Plan, Pool, PoolState, Snapshot
from strategies import StrategyState, build_strategy

ZERO = Address("0x" + "0" * 40)
Trade = tuple[tuple[str, ...], int, int]  # path, amount in, amount out


def address(n: int) -> str:
    return "0x" + f"{n:040x}"


def scenario(rng: np.random.Generator) -> tuple[Settings, Snapshot, dict[str, float]]:
    n = int(rng.integers(5, 31))
    names = [f"T{i:02d}" for i in range(n)]
    prices = {"WETH": 2000.0, "USDC": 1.0} | {t: float(10 ** rng.uniform(-2, 4.5)) for t in names}
    decimals = {"WETH": 18, "USDC": 6} | {t: int(rng.choice([6, 8, 18])) for t in names}
    tokens: dict[str, Any] = {
        s: {"address": address(i + 1), "decimals": decimals[s], "weth": s == "WETH"}
        for i, s in enumerate(["WETH", "USDC", *names])
    }
    pools: list[tuple[str, str, str, float]] = [
        ("uniswap", "USDC", "WETH", 50e6),
        ("sushiswap", "USDC", "WETH", 15e6),
    ]
    for t in names:
        depth = float(10 ** rng.uniform(5.7, 7.3))
        pools.append(("uniswap", t, "WETH", depth))
        pools.append(("sushiswap", t, "WETH", depth * float(rng.uniform(0.2, 0.6))))
        if rng.random() < 0.33:
            pools.append(("uniswap", t, "USDC", depth * float(rng.uniform(0.3, 1.0))))
    units = ["WETH", "USDC", *names]
    targets = rng.dirichlet(np.ones(len(units)))
    targets = np.round(targets, 6)
    targets[0] += 1.0 - targets.sum()
    holdings_value = 2e6 * targets * rng.lognormal(0, 0.35, len(units))
    config = {
        "chain": {"rpc_urls": ["http://127.0.0.1:1"], "chain_id": 1},
        "wallet": {"address": address(999)},
        "tokens": tokens,
        "venues": {
            "uniswap": {"factory": address(1001), "router": address(1002)},
            "sushiswap": {"factory": address(1003), "router": address(1004)},
        },
        "pools": [
            {"venue": v, "tokens": [a, b], "address": address(2000 + i)}
            for i, (v, a, b, _) in enumerate(pools)
        ],
        "valuation": {"numeraire": "USD", "stablecoin": "USDC"},
        "portfolio": {"targets": {u: float(w) for u, w in zip(units, targets, strict=True)}},
        "strategy": {
            "trigger": "threshold",
            "band": "relative",
            "band_width": 0.01,
            "deadband": 0.0,
            "min_trade_value": 0.0,
            "min_trade_fraction": 0.0,
            "cooldown_seconds": 0,
            "caps": {"max_turnover_fraction": 2.0, "max_price_impact_bps": 10_000},
            "cost_gate": {"enabled": False},
        },
        "execution": {"max_hops": 3},
    }
    settings = Settings.model_validate(config)

    def raw(symbol: str, value: float) -> int:
        return int(value / prices[symbol] * 10 ** decimals[symbol])

    states = []
    for i, (venue, a, b, depth) in enumerate(pools):
        t0, t1 = sorted((a, b), key=lambda s: int(tokens[s]["address"], 16))
        pool = Pool(f"{venue}:{a}/{b}", venue, Address(address(2000 + i)), t0, t1, 30, ZERO)
        states.append(PoolState(pool, raw(t0, depth), raw(t1, depth), 0, 10**20, 0, 0, 0, False, 0))
    balances = tuple((s, raw(s, float(v))) for s, v in zip(units, holdings_value, strict=True))
    snapshot = Snapshot(
        1,
        1,
        "0x0",
        0,
        0,
        Address(address(999)),
        0,
        balances,
        tuple(states),
        (("uniswap", ZERO), ("sushiswap", ZERO)),
    )
    return settings, snapshot, prices


def net_changes(settings: Settings, swaps: list[Trade]) -> dict[str, float]:
    net: dict[str, float] = {}
    for path, amount_in, amount_out in swaps:
        net[path[0]] = net.get(path[0], 0.0) - amount_in / 10 ** settings.tokens[path[0]].decimals
        net[path[-1]] = (
            net.get(path[-1], 0.0) + amount_out / 10 ** settings.tokens[path[-1]].decimals
        )
    return net


def cost_of(net: dict[str, float], prices: dict[str, float]) -> float:
    return -sum(amount * prices[t] for t, amount in net.items())


def naive(
    settings: Settings, snapshot: Snapshot, prices: dict[str, float], deltas: dict[str, float]
) -> list[Trade]:
    """Every sell into WETH, then WETH into every buy, one after another, all on uniswap."""
    reserves = [
        (s.pool, [s.reserve0, s.reserve1]) for s in snapshot.pools if s.pool.venue == "uniswap"
    ]

    def trade(a: str, b: str, amount: int) -> int:
        for pool, held in reserves:
            if {pool.token0, pool.token1} == {a, b}:
                r0, r1 = held
                if a == pool.token0:
                    out = amm.get_amount_out(amount, r0, r1)
                    held[:] = [r0 + amount, r1 - out]
                else:
                    out = amm.get_amount_out(amount, r1, r0)
                    held[:] = [r0 - out, r1 + amount]
                return out
        raise LookupError(f"no uniswap pool {a}/{b}")

    swaps: list[Trade] = []
    weth = 0
    for unit, delta in deltas.items():
        if delta < 0 and unit != "WETH":
            amount = int(-delta / prices[unit] * 10 ** settings.tokens[unit].decimals)
            out = trade(unit, "WETH", amount)
            swaps.append(((unit, "WETH"), amount, out))
            weth += out
        elif delta < 0:
            weth += int(-delta / prices["WETH"] * 1e18)
    buys = {u: d for u, d in deltas.items() if d > 0}
    total = sum(buys.values())
    for unit, delta in buys.items():
        share = int(weth * delta / total)
        if unit == "WETH":
            continue
        out = trade("WETH", unit, share)
        swaps.append((("WETH", unit), share, out))
    return swaps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenarios", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    ratios, naive_ratios, plan_times, solve_times = [], [], [], []
    print(
        f"{'#':>3} {'tokens':>6} {'pools':>5} {'turnover':>12} {'planner':>10} {'optimum':>10} {'ratio':>7} {'naive':>7}  {'plan ms':>8} {'solve ms':>8}"
    )
    for k in range(args.scenarios):
        settings, snapshot, prices = scenario(rng)
        view = value_portfolio(snapshot, settings)
        decision = build_strategy(settings.strategy).decide(view, StrategyState(), 0)
        start = time.perf_counter()
        proposed: Plan = plan(snapshot, view, settings, decision.deltas, 0, gas_price_wei=0)
        plan_times.append(time.perf_counter() - start)
        net = net_changes(settings, [(s.path, s.amount_in, s.expected_out) for s in proposed.swaps])
        pools = [
            CfmmPool(
                s.pool.token0,
                s.pool.token1,
                s.reserve0 / 10 ** settings.tokens[s.pool.token0].decimals,
                s.reserve1 / 10 ** settings.tokens[s.pool.token1].decimals,
                s.pool.fee_bps,
            )
            for s in snapshot.pools
        ]
        start = time.perf_counter()
        best = optimal_cost(pools, prices, net)
        solve_times.append(time.perf_counter() - start)
        ours = cost_of(net, prices)
        naive_net = net_changes(settings, naive(settings, snapshot, prices, decision.deltas))
        naive_ratio = cost_of(naive_net, prices) / optimal_cost(pools, prices, naive_net)
        ratios.append(ours / best)
        naive_ratios.append(naive_ratio)
        turnover = sum(d for d in decision.deltas.values() if d > 0)
        print(
            f"{k:>3} {len(settings.tokens):>6} {len(pools):>5} {turnover:>12,.0f} {ours:>10,.2f} {best:>10,.2f} {ours / best:>7.4f} {naive_ratio:>7.4f}  {plan_times[-1] * 1000:>8.1f} {solve_times[-1] * 1000:>8.1f}"
        )
    print(
        f"planner time median {statistics.median(plan_times) * 1000:.1f} ms, solver median {statistics.median(solve_times) * 1000:.1f} ms"
    )
    print(
        f"median {statistics.median(ratios):.4f} worst {max(ratios):.4f} naive-median {statistics.median(naive_ratios):.4f}"
    )


if __name__ == "__main__":
    main()
