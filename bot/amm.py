"""Exact Uniswap V2 integer math, mirroring v2-core's UniswapV2Pair and v2-periphery's
UniswapV2Library to the wei.

Every amount is a raw token amount (an int). Each function raises ValueError exactly where the
contract would revert, with the contract's own revert reason in the message. Fees are in basis
points; the default 30 is Uniswap V2's 0.3% (997/1000).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from bot.types import BPS

UINT112_MAX = 2**112 - 1
UINT256_MAX = 2**256 - 1
MINIMUM_LIQUIDITY = 1_000  # LP wei locked forever by the pair's first mint


def _check_uint(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int of raw token units, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    if value > UINT256_MAX:
        raise ValueError(f"{name} does not fit in uint256")


def _mul(a: int, b: int) -> int:
    # SafeMath.mul: the periphery reverts where the product leaves uint256.
    product = a * b
    if product > UINT256_MAX:
        raise ValueError("ds-math-mul-overflow: the amounts are too large for uint256 arithmetic")
    return product


def _fee_terms(fee_bps: int) -> tuple[int, int]:
    """(fee, denominator) reduced by their gcd, so 30 bps becomes Solidity's 3/1000."""
    if not isinstance(fee_bps, int) or not 0 <= fee_bps < BPS:
        raise ValueError(f"fee_bps must be an int in [0, 10000), got {fee_bps!r}")
    divisor = math.gcd(fee_bps, BPS)
    return fee_bps // divisor, BPS // divisor


def _check_reserves(reserve_in: int, reserve_out: int) -> None:
    _check_uint("reserve_in", reserve_in)
    _check_uint("reserve_out", reserve_out)
    if reserve_in == 0 or reserve_out == 0:
        raise ValueError("UniswapV2Library: INSUFFICIENT_LIQUIDITY (a reserve is zero)")


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Output of swapping exactly `amount_in` (UniswapV2Library.getAmountOut)."""
    _check_uint("amount_in", amount_in)
    if amount_in == 0:
        raise ValueError("UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT (amount_in is zero)")
    _check_reserves(reserve_in, reserve_out)
    fee, denominator = _fee_terms(fee_bps)
    amount_in_with_fee = _mul(amount_in, denominator - fee)
    numerator = _mul(amount_in_with_fee, reserve_out)
    divisor = _mul(reserve_in, denominator) + amount_in_with_fee
    if divisor > UINT256_MAX:
        raise ValueError("ds-math-add-overflow: the amounts are too large for uint256 arithmetic")
    return numerator // divisor


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_bps: int = 30) -> int:
    """Input needed to receive exactly `amount_out` (UniswapV2Library.getAmountIn)."""
    _check_uint("amount_out", amount_out)
    if amount_out == 0:
        raise ValueError("UniswapV2Library: INSUFFICIENT_OUTPUT_AMOUNT (amount_out is zero)")
    _check_reserves(reserve_in, reserve_out)
    if amount_out >= reserve_out:
        raise ValueError(
            f"amount_out {amount_out} must be below reserve_out {reserve_out}: "
            "the pool cannot pay out its whole reserve"
        )
    fee, denominator = _fee_terms(fee_bps)
    numerator = _mul(_mul(reserve_in, amount_out), denominator)
    divisor = _mul(reserve_out - amount_out, denominator - fee)
    return numerator // divisor + 1


def get_amounts_out(
    amount_in: int, reserves_path: Sequence[tuple[int, int]], fee_bps: int = 30
) -> list[int]:
    """Router02.getAmountsOut over hops given as (reserve_in, reserve_out) pairs.

    Returns [amount_in, out_hop1, ..., out_hopN], as the router does.
    """
    if not reserves_path:
        raise ValueError("UniswapV2Library: INVALID_PATH (a path needs at least one hop)")
    amounts = [amount_in]
    for reserve_in, reserve_out in reserves_path:
        amounts.append(get_amount_out(amounts[-1], reserve_in, reserve_out, fee_bps))
    return amounts


def get_amounts_in(
    amount_out: int, reserves_path: Sequence[tuple[int, int]], fee_bps: int = 30
) -> list[int]:
    """Router02.getAmountsIn: hops in trade order as (reserve_in, reserve_out) pairs.

    Returns [amount_in, ..., amount_out], as the router does.
    """
    if not reserves_path:
        raise ValueError("UniswapV2Library: INVALID_PATH (a path needs at least one hop)")
    amounts = [amount_out]
    for reserve_in, reserve_out in reversed(reserves_path):
        amounts.append(get_amount_in(amounts[-1], reserve_in, reserve_out, fee_bps))
    amounts.reverse()
    return amounts


def quote(amount_a: int, reserve_a: int, reserve_b: int) -> int:
    """UniswapV2Library.quote: the amount of B worth `amount_a` at the pool's ratio, no fee."""
    _check_uint("amount_a", amount_a)
    if amount_a == 0:
        raise ValueError("UniswapV2Library: INSUFFICIENT_AMOUNT (amount_a is zero)")
    _check_reserves(reserve_a, reserve_b)
    return _mul(amount_a, reserve_b) // reserve_a


def add_liquidity_amounts(
    desired_a: int,
    desired_b: int,
    reserve_a: int,
    reserve_b: int,
    min_a: int = 0,
    min_b: int = 0,
) -> tuple[int, int]:
    """The amounts Router02.addLiquidity actually deposits (its _addLiquidity)."""
    for name, value in (("desired_a", desired_a), ("desired_b", desired_b)):
        _check_uint(name, value)
    if reserve_a == 0 and reserve_b == 0:
        return desired_a, desired_b
    optimal_b = quote(desired_a, reserve_a, reserve_b)
    if optimal_b <= desired_b:
        if optimal_b < min_b:
            raise ValueError("UniswapV2Router: INSUFFICIENT_B_AMOUNT")
        return desired_a, optimal_b
    optimal_a = quote(desired_b, reserve_b, reserve_a)
    if optimal_a > desired_a:  # the router asserts this cannot happen
        raise ValueError("UniswapV2Router: optimal amount exceeds desired")
    if optimal_a < min_a:
        raise ValueError("UniswapV2Router: INSUFFICIENT_A_AMOUNT")
    return optimal_a, desired_b


def protocol_fee_liquidity(reserve0: int, reserve1: int, total_supply: int, k_last: int) -> int:
    """LP tokens UniswapV2Pair._mintFee mints to feeTo before the next mint or burn.

    It is 1/6 of the growth of sqrt(k) since kLast, expressed in LP tokens.
    """
    if k_last == 0:
        return 0
    root_k = math.isqrt(reserve0 * reserve1)
    root_k_last = math.isqrt(k_last)
    if root_k <= root_k_last:
        return 0
    numerator = _mul(total_supply, root_k - root_k_last)
    divisor = _mul(root_k, 5) + root_k_last
    return numerator // divisor


def lp_underlying(
    liquidity: int,
    reserve0: int,
    reserve1: int,
    total_supply: int,
    k_last: int = 0,
    fee_on: bool = False,
    *,
    balance0: int | None = None,
    balance1: int | None = None,
) -> tuple[int, int]:
    """(amount0, amount1) that burning `liquidity` pays (UniswapV2Pair.burn).

    With the protocol fee on, the pending fee mint dilutes the position first. The pair pays
    from its balances, which equal the reserves unless tokens were sent to it without a
    sync; pass them when they differ.
    """
    for name, value in (
        ("liquidity", liquidity),
        ("reserve0", reserve0),
        ("reserve1", reserve1),
        ("total_supply", total_supply),
        ("k_last", k_last),
    ):
        _check_uint(name, value)
    if total_supply == 0:
        raise ValueError("total_supply is zero: the pool has no liquidity to burn")
    if liquidity > total_supply:
        raise ValueError(f"liquidity {liquidity} exceeds total_supply {total_supply}")
    supply = total_supply
    if fee_on:
        supply += protocol_fee_liquidity(reserve0, reserve1, total_supply, k_last)
    amount0 = _mul(liquidity, reserve0 if balance0 is None else balance0) // supply
    amount1 = _mul(liquidity, reserve1 if balance1 is None else balance1) // supply
    if amount0 == 0 or amount1 == 0:
        raise ValueError("UniswapV2: INSUFFICIENT_LIQUIDITY_BURNED (the position pays zero)")
    return amount0, amount1


def liquidity_minted(
    amount0: int,
    amount1: int,
    reserve0: int,
    reserve1: int,
    total_supply: int,
    k_last: int = 0,
    fee_on: bool = False,
) -> int:
    """LP tokens UniswapV2Pair.mint gives for depositing (amount0, amount1) as received."""
    for name, value in (
        ("amount0", amount0),
        ("amount1", amount1),
        ("reserve0", reserve0),
        ("reserve1", reserve1),
        ("total_supply", total_supply),
        ("k_last", k_last),
    ):
        _check_uint(name, value)
    if reserve0 + amount0 > UINT112_MAX or reserve1 + amount1 > UINT112_MAX:
        raise ValueError("UniswapV2: OVERFLOW (a balance would exceed uint112)")
    supply = total_supply
    if fee_on:
        supply += protocol_fee_liquidity(reserve0, reserve1, total_supply, k_last)
    if supply == 0:
        liquidity = math.isqrt(_mul(amount0, amount1)) - MINIMUM_LIQUIDITY
    else:
        if reserve0 == 0 or reserve1 == 0:
            raise ValueError("a pool with LP supply has a zero reserve: cannot price the deposit")
        liquidity = min(_mul(amount0, supply) // reserve0, _mul(amount1, supply) // reserve1)
    if liquidity <= 0:
        raise ValueError("UniswapV2: INSUFFICIENT_LIQUIDITY_MINTED (the deposit is too small)")
    return liquidity


def zap_swap_amount(amount_in: int, reserve_in: int, fee_bps: int = 30) -> int:
    """How much of a one-sided deposit to swap first so the rest adds with nothing left over.

    Solves for s with the swap's own price impact and fee: for 0.3% this is
    s = (isqrt(r * (3988009 * r + 3988000 * a)) - 1997 * r) / 1994.
    """
    _check_uint("amount_in", amount_in)
    _check_uint("reserve_in", reserve_in)
    if reserve_in == 0:
        raise ValueError("reserve_in is zero: cannot zap into an empty pool")
    fee, d = _fee_terms(fee_bps)
    b = 2 * d - fee
    g = d - fee
    return (
        math.isqrt(reserve_in * (b * b * reserve_in + 4 * g * d * amount_in)) - b * reserve_in
    ) // (2 * g)


def impermanent_loss(price_ratio: float) -> float:
    """Value of a 50/50 constant-product LP position relative to holding, minus one.

    `price_ratio` is the relative price now over the price at entry: 2 gives -5.72%.
    """
    if not math.isfinite(price_ratio) or price_ratio <= 0:
        raise ValueError(f"price_ratio must be a positive finite number, got {price_ratio}")
    return 2 * math.sqrt(price_ratio) / (1 + price_ratio) - 1
