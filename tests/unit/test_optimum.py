"""The convex reference optimum agrees with closed-form trades where one exists."""

from __future__ import annotations

import sys

import pytest

from bot import amm
from bot.paths import ROOT

sys.path.insert(0, str(ROOT / "bench"))
from optimum import CfmmPool, optimal_cost


def test_single_pool_cost_equals_the_exact_input_needed() -> None:
    pool = CfmmPool("A", "B", 1_000.0, 1_000.0, 30)
    cost = optimal_cost([pool], {"A": 1.0, "B": 1.0}, {"B": 10.0, "A": -50.0})
    needed = 1_000.0 * 10.0 / (0.997 * (1_000.0 - 10.0))  # getAmountIn without rounding
    assert cost == pytest.approx(needed - 10.0, rel=1e-4)  # the interior-point tolerance


def test_two_pools_split_beats_either_alone() -> None:
    pools = [CfmmPool("A", "B", 1_000.0, 1_000.0, 30), CfmmPool("A", "B", 3_000.0, 3_000.0, 30)]
    both = optimal_cost(pools, {"A": 1.0, "B": 1.0}, {"B": 100.0, "A": -500.0})
    deep_only = optimal_cost(pools[1:], {"A": 1.0, "B": 1.0}, {"B": 100.0, "A": -500.0})
    assert both < deep_only
    # the integer closed-form split lands on the same cost
    _inputs, out = None, 0
    lo, hi = 100 * 10**6, 200 * 10**6
    raw_pools = [(10**9, 10**9, 30), (3 * 10**9, 3 * 10**9, 30)]
    from bot.planner import split_output

    while lo < hi:  # smallest input whose split delivers 100 B
        mid = (lo + hi) // 2
        _inputs, out = split_output(mid, raw_pools)
        if out >= 100 * 10**6:
            hi = mid
        else:
            lo = mid + 1
    assert (lo / 10**6 - 100.0) == pytest.approx(both, rel=1e-4)
    assert amm.get_amount_out(1, 10, 10) == 0
