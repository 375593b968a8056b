"""The price dataset loader refuses malformed files with the line at fault."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.paths import prices_csv
from bot.prices import load_prices


def test_shared_dataset_loads() -> None:
    table = load_prices(prices_csv())
    assert table.columns == ("BTC", "ETH", "WBTC", "STETH", "USDC", "USDT", "LINK")
    assert table.price(date(2020, 3, 12), "ETH") == 112.35
    assert "STETH" not in table.rows[date(2020, 3, 12)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("day,ETH\n2020-01-01,1\n", "first row must be"),
        ("date,ETH\n2020-01-01,1\n2020-01-01,2\n", "line 3|:3: date 2020-01-01 appears twice"),
        ("date,ETH\n2020-01-01,-1\n", ":2: ETH=-1 must be a positive price"),
        ("date,ETH\n2020-01-01,nan\n", ":2: ETH=nan must be a positive price"),
        ("date,ETH\n01/02/2020,1\n", "is not a YYYY-MM-DD date"),
        ("date,ETH\n2020-01-01,abc\n", "ETH='abc' is not a number"),
    ],
)
def test_malformed_csv(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_prices(path)
