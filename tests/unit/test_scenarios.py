"""Bad scenarios get an error naming the field, and nothing is built."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from anvil_fixtures.builder import build, output_dir
from anvil_fixtures.scenario import load_scenario
from bot.errors import ConfigError
from bot.paths import SCENARIOS

DEFAULT = (SCENARIOS / "default.toml").read_text()


def variant(tmp_path: Path, name: str, old: str, new: str, count: int = 1) -> str:
    assert old in DEFAULT, old
    text = DEFAULT.replace('name = "default"', f'name = "{name}"').replace(old, new, count)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return str(path)


def test_default_scenario_is_valid() -> None:
    scenario = load_scenario("default")
    assert scenario.weth_symbol() == "WETH"
    assert len(scenario.pools) == 12
    assert scenario.date.isoformat() == tomllib.loads(DEFAULT)["date"] == "2020-03-11"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'tokens = ["LINK", "WETH"]',
            'tokens = ["LINK", "DOGE"]',
            r"pools\[4\]\.tokens: unknown token 'DOGE'",
        ),
        (
            'venue = "sushiswap"\ntokens = ["LINK"',
            'venue = "curve"\ntokens = ["LINK"',
            r"pools\[11\]\.venue: unknown venue 'curve'",
        ),
        (
            'tokens = ["DAI", "USDC"]',
            'tokens = ["USDC", "DAI"]\ndepth_usd = 1\n[[pools]]\nvenue = "uniswap"\ntokens = ["DAI", "USDC"]',
            r"duplicate pool uniswap:DAI/USDC",
        ),
        (
            "depth_usd = 1_500_000",
            "depth_usd = -5",
            r"pools\.11\.depth_usd: Input should be greater than 0",
        ),
        (
            "depth_usd = 1_500_000",
            "depth_usd = 0",
            r"pools\.11\.depth_usd: Input should be greater than 0",
        ),
        (
            'pool = "sushiswap:WBTC/WETH"',
            'pool = "sushiswap:DAI/WETH"',
            r"wallet\.lp\[1\]\.pool: no pool",
        ),
        (
            "decimals = 8",
            "decimals = 8\nsurprise = 1",
            r"tokens\.WBTC\.surprise: Extra inputs are not permitted",
        ),
    ],
)
def test_invalid_scenario_names_the_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = variant(tmp_path, "broken", old, new)
    with pytest.raises(ConfigError, match=message):
        build(path)
    assert not output_dir(path, False).exists()


def test_reserve_overflowing_uint112_is_refused_before_anything_runs(tmp_path: Path) -> None:
    path = variant(tmp_path, "whale", "depth_usd = 1_500_000", "depth_usd = 1e40")
    with pytest.raises(
        ConfigError,
        match=r"pools\[11\] \(sushiswap:LINK/WETH\): the LINK reserve \d+ overflows uint112",
    ):
        build(path)
    assert not output_dir(path, False).exists()


def test_reserve_rounding_to_zero_is_refused(tmp_path: Path) -> None:
    path = variant(tmp_path, "dust", "depth_usd = 1_500_000", "depth_usd = 1e-30")
    with pytest.raises(ConfigError, match=r"pools\[11\].*rounds to zero"):
        build(path)


def test_date_missing_from_the_dataset(tmp_path: Path) -> None:
    path = variant(tmp_path, "early", 'date = "2020-03-11"', 'date = "2019-06-01"')
    with pytest.raises(ConfigError, match=re.escape("date 2019-06-01 is not in prices_daily.csv")):
        build(path)
    assert not output_dir(path, False).exists()


def test_empty_price_cell_names_the_token(tmp_path: Path) -> None:
    path = variant(
        tmp_path, "nosteth", 'price_column = "LINK"\nmainnet', 'price_column = "STETH"\nmainnet'
    )
    with pytest.raises(
        ConfigError, match=r"tokens\.LINK\.price_column: .*no STETH price on 2020-03-11"
    ):
        build(path)


def test_unknown_scenario_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"scenario 'nope' not found \(known: .*default"):
        load_scenario("nope")
