"""Exact cases for bot.amm, worked by hand from the Solidity formulas."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import amm


def test_get_amount_out_by_hand() -> None:
    # floor(997 * 1e18 * 2e9 / (1000 * 1e21 + 997 * 1e18)) with a 1000 ETH / 2M USDC pool
    assert amm.get_amount_out(10**18, 10**21, 2 * 10**12) == 1_992_013_962
    assert amm.get_amount_out(1, 10**21, 2 * 10**12) == 0  # dust rounds to zero, as on chain


def test_get_amount_in_by_hand() -> None:
    # floor(1000 * 1e21 * 1992013962 / (997 * (2e12 - 1992013962))) + 1
    assert amm.get_amount_in(1_992_013_962, 10**21, 2 * 10**12) == 999_999_999_959_896_868
    assert (
        amm.get_amount_out(amm.get_amount_in(1_992_013_962, 10**21, 2 * 10**12), 10**21, 2 * 10**12)
        >= 1_992_013_962
    )


def test_fee_bps_generalises_997_over_1000() -> None:
    assert amm.get_amount_out(10**18, 10**21, 2 * 10**12, fee_bps=30) == amm.get_amount_out(
        10**18, 10**21, 2 * 10**12
    )
    assert amm.get_amount_out(10**6, 10**9, 10**9, fee_bps=0) == 10**15 // (10**9 + 10**6)
    # 0.25% (PancakeSwap-style): floor(9975 a R / (10000 r + 9975 a))
    assert amm.get_amount_out(10**6, 10**9, 10**9, fee_bps=25) == 9975 * 10**15 // (
        10**13 + 9975 * 10**6
    )


def test_multi_hop_chains_outputs() -> None:
    hops = [(10**21, 2 * 10**12), (2 * 10**12, 10**8 * 50)]
    amounts = amm.get_amounts_out(10**18, hops)
    assert amounts[0] == 10**18
    assert amounts[1] == amm.get_amount_out(10**18, *hops[0])
    assert amounts[2] == amm.get_amount_out(amounts[1], *hops[1])
    back = amm.get_amounts_in(amounts[2], hops)
    assert back[-1] == amounts[2]
    assert back[0] <= 10**18 + 2  # rounding up once per hop


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: amm.get_amount_out(0, 1, 1), "INSUFFICIENT_INPUT_AMOUNT"),
        (lambda: amm.get_amount_out(1, 0, 1), "INSUFFICIENT_LIQUIDITY"),
        (lambda: amm.get_amount_out(-1, 1, 1), "must not be negative"),
        (lambda: amm.get_amount_out(2**255, 2**100, 2**100), "ds-math-mul-overflow"),
        (lambda: amm.get_amount_in(0, 1, 1), "INSUFFICIENT_OUTPUT_AMOUNT"),
        (lambda: amm.get_amount_in(10, 100, 10), "must be below reserve_out"),
        (lambda: amm.get_amount_in(11, 100, 10), "must be below reserve_out"),
        (lambda: amm.get_amounts_out(1, []), "INVALID_PATH"),
        (lambda: amm.lp_underlying(1, 10, 10, 0), "total_supply is zero"),
        (lambda: amm.lp_underlying(11, 10, 10, 10), "exceeds total_supply"),
        (lambda: amm.lp_underlying(1, 10, 10, 1000), "INSUFFICIENT_LIQUIDITY_BURNED"),
        (lambda: amm.liquidity_minted(10, 10, 0, 0, 0), "INSUFFICIENT_LIQUIDITY_MINTED"),
        (lambda: amm.liquidity_minted(1, 1, amm.UINT112_MAX, 1, 10), "OVERFLOW"),
        (lambda: amm.zap_swap_amount(1, 0), "empty pool"),
        (lambda: amm.get_amount_out(1, 1, 1, fee_bps=10_000), "fee_bps"),
        (lambda: amm.impermanent_loss(0), "positive"),
    ],
)
def test_invalid_input_raises_where_the_contract_reverts(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_float_amounts_are_refused() -> None:
    with pytest.raises(TypeError, match="must be an int"):
        amm.get_amount_out(1.5, 10, 10)  # type: ignore[arg-type]


def test_protocol_fee_is_a_sixth_of_growth() -> None:
    # sqrt(k) grew from 1000 to 1100: feeTo gets TS * 100 / (5 * 1100 + 1000)
    assert amm.protocol_fee_liquidity(1100, 1100, 6500, 1000 * 1000) == 6500 * 100 // 6500
    assert amm.protocol_fee_liquidity(1100, 1100, 6500, 0) == 0  # kLast 0: fee was off
    assert amm.protocol_fee_liquidity(900, 900, 6500, 1000 * 1000) == 0  # k shrank
    on = amm.lp_underlying(650, 1100, 1100, 6500, 1000 * 1000, fee_on=True)
    off = amm.lp_underlying(650, 1100, 1100, 6500, 1000 * 1000, fee_on=False)
    assert off == (110, 110)
    assert on == (650 * 1100 // 6600, 650 * 1100 // 6600)


def test_first_mint_locks_minimum_liquidity() -> None:
    assert amm.liquidity_minted(10**6, 10**6, 0, 0, 0) == 10**6 - 1000
    assert amm.liquidity_minted(50, 100, 100, 100, 1000) == 500  # the smaller side counts


@given(st.data(), st.integers(10**6, 10**30), st.integers(10**6, 10**30))
def test_zap_leaves_almost_nothing_unused(
    data: st.DataObject, reserve_in: int, reserve_out: int
) -> None:
    amount = data.draw(st.integers(1, reserve_in), label="amount")  # up to the pool's own size
    swap = amm.zap_swap_amount(amount, reserve_in)
    assert 0 <= swap < amount
    out = amm.get_amount_out(swap, reserve_in, reserve_out) if swap else 0
    rest = amount - swap
    # After the swap the pool holds reserve_in + swap and reserve_out - out; depositing `rest`
    # and `out` in that ratio leaves unused input of a few units of `out`'s worth (flooring).
    needed_in = out * (reserve_in + swap) // (reserve_out - out) if out else 0
    one_unit = (reserve_in + swap) // (reserve_out - out) + 2
    assert abs(rest - needed_in) <= 3 * one_unit + amount // 10**6 or out == 0


def test_zap_matches_the_design_formula_at_30_bps() -> None:
    a, r = 10**18, 10**21
    assert (
        amm.zap_swap_amount(a, r)
        == (math.isqrt(r * (3988009 * r + 3988000 * a)) - 1997 * r) // 1994
    )


@pytest.mark.parametrize(("ratio", "loss"), [(1.0, 0.0), (2.0, -0.0572), (4.0, -0.2), (0.25, -0.2)])
def test_impermanent_loss(ratio: float, loss: float) -> None:
    assert amm.impermanent_loss(ratio) == pytest.approx(loss, abs=5e-5)
