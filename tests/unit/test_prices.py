"""The price dataset loader refuses malformed files with the line at fault."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.paths import prices_csv
from bot.prices import load_prices, price_matrix


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


def test_a_byte_order_mark_is_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfdate,ETH\r\n2020-01-01,130.8\r\n2020-01-02,127.41\r\n")
    table = load_prices(path)
    assert table.columns == ("ETH",)
    assert table.price(date(2020, 1, 2), "ETH") == 127.41


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", ":1: the first row must be `date,<asset>,...`, not 'an empty file'"),
        (
            b"date;ETH\n2020-01-01;1\n",
            ":1: the first row must be `date,<asset>,...`, not 'date;ETH'",
        ),
        (b"date,ETH,ETH\n2020-01-01,1,2\n", ":1: column 'ETH' appears twice"),
        (b"date,ETH,\n2020-01-01,1,2\n", ":1: column 3 has no name"),
        (b"date,ETH\n2020-01-01,1,2\n", ":2: 3 cells, but the header names 2"),
        (b"date,ETH\n2020-01-01,1\n2020-01-02,1.0.0\n", ":3: ETH='1.0.0' is not a number"),
        (b"date,ETH\n2020-01-01,\xe9\n", ": not UTF-8 text (it holds byte 0xe9): save it as UTF-8"),
        (b'date,ETH\n2020-01-01,"' + b"1" * 200_000, ":2: not a readable CSV row (field larger"),
        (b"date,ETH\n", " has no rows"),
    ],
)
def test_each_malformed_file_is_one_line_naming_it(
    tmp_path: Path, body: bytes, message: str
) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(body)
    with pytest.raises(ConfigError) as caught:
        load_prices(path)
    text = str(caught.value)
    assert text.startswith(str(path))
    assert message in text
    assert "\n" not in text


def test_a_missing_file_or_a_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"price file .*nowhere\.csv not found: pass --prices"):
        load_prices(tmp_path / "nowhere.csv")
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        load_prices(tmp_path)


def test_an_unknown_column_names_the_file_and_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("date,ETH,LINK\n2020-01-01,100,5\n2020-01-02,101,6\n")
    with pytest.raises(ConfigError, match=r"^p\.csv has no column 'WBTC' \(it has: ETH, LINK\)$"):
        price_matrix(load_prices(path), ["ETH", "WBTC"])
