"""The reference optimum for the planner benchmark: optimal routing through constant-function
market makers as a convex program (Angeris, Chitra, Evans, Boyd, "Optimal Routing for Constant
Function Market Makers", 2022), solved with cvxpy.

Each pool i trades tendered amounts D_i >= 0 for received amounts L_i >= 0 subject to its
trading function staying at least where it was, (R0 + g*D0 - L0)(R1 + g*D1 - L1) >= R0*R1,
written as a geometric mean so that it is convex. The net trade is psi = sum_i (L_i - D_i).
Given the net changes a plan achieved (at least these buys, at most these sells, nothing lost in
any other token), the program finds the cheapest way to achieve them through the same pools,
gas free: it maximises the reference value of psi. Amounts are rescaled to value units (about 1)
so the solver works on well-conditioned numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np


@dataclass(frozen=True)
class CfmmPool:
    token0: str
    token1: str
    reserve0: float  # whole token units
    reserve1: float
    fee_bps: int


def optimal_cost(
    pools: Sequence[CfmmPool],
    prices: Mapping[str, float],
    required: Mapping[str, float],
    value_scale: float | None = None,
) -> float:
    """Minimum value lost (in the numeraire, at `prices`) to achieve net changes >= `required`.

    `required[token]` is the least net change of that token in whole units: positive for what
    must be bought, negative for the most that may be sold; tokens absent must not decrease.
    """
    tokens = sorted({p.token0 for p in pools} | {p.token1 for p in pools} | set(required))
    index = {t: i for i, t in enumerate(tokens)}
    if value_scale is None:  # the median pool side's value becomes 1
        value_scale = float(np.median([p.reserve0 * prices[p.token0] for p in pools]))
    # value units: token amount x price / value_scale
    unit = np.array([prices[t] / value_scale for t in tokens])
    psi = 0
    constraints = []
    for pool in pools:
        i, j = index[pool.token0], index[pool.token1]
        gamma = (10_000 - pool.fee_bps) / 10_000
        r = np.array([pool.reserve0 * unit[i], pool.reserve1 * unit[j]])
        tendered = cp.Variable(2, nonneg=True)
        received = cp.Variable(2, nonneg=True)
        after = r + gamma * tendered - received
        constraints.append(cp.geo_mean(after) >= float(np.sqrt(r[0] * r[1])))
        selector = np.zeros((len(tokens), 2))
        selector[i, 0] = 1.0
        selector[j, 1] = 1.0
        psi = psi + selector @ (received - tendered)
    floor = np.array([required.get(t, 0.0) * unit[index[t]] for t in tokens])
    constraints.append(psi >= floor)
    problem = cp.Problem(cp.Maximize(cp.sum(psi)), constraints)
    problem.solve(solver=cp.CLARABEL)  # type: ignore[no-untyped-call]
    if problem.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"the routing program is {problem.status}")
    return float(-problem.value * value_scale)
