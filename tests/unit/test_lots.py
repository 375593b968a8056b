"""Cost-basis lots (bot/lots.py), on hand-computed cases.

Every figure below is chosen to be exact in binary floating point, so the gains compare with ==.
"""

from __future__ import annotations

import pytest

from bot.lots import Lot, LotMethod, apply_trade, opened_unit_cost, seed_lots, swap_units
from bot.portfolio import AssetExposure, Price, Valuation
from bot.types import Swap

# Oldest first, as the journal gives them: 6 units in all.
LOTS = (
    Lot(1, 2.0, 100.0, 1_000.0),  # 2 units at 100, the oldest
    Lot(2, 3.0, 150.0, 2_000.0),  # 3 units at 150, the dearest
    Lot(3, 1.0, 120.0, 3_000.0),  # 1 unit at 120
)


def test_fifo_and_hifo_close_different_lots_for_different_gains() -> None:
    # 4 units sold for 560: 140 a unit.
    # FIFO: lot 1 whole, 2 x (140 - 100) = 80; then 2 of lot 2, 2 x (140 - 150) = -20; gain 60.
    assert apply_trade(LOTS, 4.0, 560.0, "FIFO") == ([(1, 2.0), (2, 2.0)], 60.0)
    # HIFO: lot 2 whole, 3 x (140 - 150) = -30; then lot 3, 1 x (140 - 120) = 20; gain -10.
    assert apply_trade(LOTS, 4.0, 560.0, "HIFO") == ([(2, 3.0), (3, 1.0)], -10.0)


def test_a_partial_closure_takes_only_what_was_sold() -> None:
    # 0.5 units sold for 60: 120 a unit.
    # FIFO: 0.5 of lot 1, 0.5 x (120 - 100) = 10.
    assert apply_trade(LOTS, 0.5, 60.0, "FIFO") == ([(1, 0.5)], 10.0)
    # HIFO: 0.5 of lot 2, 0.5 x (120 - 150) = -15.
    assert apply_trade(LOTS, 0.5, 60.0, "HIFO") == ([(2, 0.5)], -15.0)


def test_a_sale_larger_than_every_open_lot_closes_them_all_and_no_more() -> None:
    # 10 units sold for 1,500: 150 a unit; only 6 units have a cost basis.
    # lot 1: 2 x (150 - 100) = 100; lot 2: 3 x (150 - 150) = 0; lot 3: 1 x (150 - 120) = 30.
    # The other 4 units have no known cost: they realize nothing. Gain 130 either way.
    closures, gain = apply_trade(LOTS, 10.0, 1_500.0, "FIFO")
    assert closures == [(1, 2.0), (2, 3.0), (3, 1.0)]
    assert gain == 130.0
    closures, gain = apply_trade(LOTS, 10.0, 1_500.0, "HIFO")
    assert closures == [(2, 3.0), (3, 1.0), (1, 2.0)]
    assert gain == 130.0


def test_a_sale_with_no_open_lots_realizes_nothing() -> None:
    assert apply_trade((), 3.0, 300.0, "FIFO") == ([], 0.0)
    assert apply_trade((), 3.0, 300.0, "HIFO") == ([], 0.0)


@pytest.mark.parametrize("method", ["FIFO", "HIFO"])
def test_selling_nothing_closes_nothing_and_never_divides_by_zero(method: LotMethod) -> None:
    assert apply_trade(LOTS, 0.0, 0.0, method) == ([], 0.0)


def test_a_lot_with_nothing_left_is_passed_over() -> None:
    # lot 1 is spent; 1 unit sold for 80 comes out of lot 2: 1 x (80 - 50) = 30.
    lots = (Lot(1, 0.0, 100.0, 1.0), Lot(2, 1.0, 50.0, 2.0))
    assert apply_trade(lots, 1.0, 80.0, "FIFO") == ([(2, 1.0)], 30.0)


def test_hifo_closes_the_oldest_of_equally_dear_lots_first() -> None:
    lots = (Lot(7, 1.0, 100.0, 1.0), Lot(8, 1.0, 100.0, 2.0))
    # 1.5 units for 165: 110 a unit; lot 7 whole, 1 x 10, then 0.5 of lot 8, 0.5 x 10; gain 15.
    assert apply_trade(lots, 1.5, 165.0, "HIFO") == ([(7, 1.0), (8, 0.5)], 15.0)


def test_a_buy_opens_a_lot_at_what_was_given_per_unit_received() -> None:
    swap = Swap(
        venue="uniswap",
        path=("USDC", "WETH"),
        pools=("uniswap:USDC/WETH",),
        amount_in=250_000_000,  # 250 USDC (6 decimals)
        expected_out=1_250_000_000_000_000_000,  # 1.25 WETH (18 decimals)
        min_out=1_240_000_000_000_000_000,
        fee_on_transfer=False,
        gas=121_407,
        value_in=250.0,  # given up, at valuation prices
        fee_cost=0.75,
        impact_cost=0.25,
    )
    sold_units, bought_units = swap_units(swap, {"USDC": 6, "WETH": 18})
    assert (sold_units, bought_units) == (250.0, 1.25)
    # 250 given up for 1.25 WETH: the lot opens at 250 / 1.25 = 200 a unit.
    assert opened_unit_cost(bought_units, swap.value_in) == 200.0
    # nothing received (a transfer fee that ate it all): a zero-cost lot, no division by zero
    assert opened_unit_cost(0.0, 250.0) == 0.0


def test_the_first_run_seeds_a_lot_per_holding_at_todays_price() -> None:
    def exposure(asset: str, amount: float, value: float) -> AssetExposure:
        return AssetExposure(asset, asset, int(amount), amount, 0.0, value, value, 0.0)

    def price(symbol: str, spot: float) -> Price:
        return Price(symbol, spot, spot, (), 1e6, ())

    view = Valuation(
        block_number=1,
        timestamp=0,
        numeraire="USD",
        total_value=2_000.0,
        total_notional=2_000.0,
        prices={
            "WETH": price("WETH", 200.0),
            "USDC": price("USDC", 1.0),
            "LINK": price("LINK", 4.0),
        },
        pools={},
        assets=(
            exposure("WETH", 5.0, 1_000.0),
            exposure("USDC", 0.0, 0.0),  # nothing held: no lot
            exposure("LINK", 250.0, 1_000.0),
        ),
        units=(),
        lp_positions=(),
    )
    assert seed_lots(view) == [("WETH", 5.0, 200.0), ("LINK", 250.0, 4.0)]
