"""Settings: every bad field is named; env overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.paths import ROOT
from bot.settings import load_settings

LOCAL = (ROOT / "config" / "local.toml").read_text()


def write(tmp_path: Path, old: str, new: str) -> Path:
    assert old in LOCAL, old
    path = tmp_path / "c.toml"
    path.write_text(LOCAL.replace(old, new, 1))
    return path


def test_local_config_loads() -> None:
    settings = load_settings(ROOT / "config" / "local.toml")
    assert settings.chain.chain_id == 31337
    assert settings.unit_of("WETH") == "eth"
    assert settings.unit_of("ETH") == "eth"
    assert settings.unit_of("LINK") == "LINK"
    assert settings.numeraire_token() == "USDC"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("FOT = 0.005 }", "FOT = 0.006 }", r"portfolio\.targets: weights sum to 1\.001"),
        (
            "WBTC = 0.20,",
            "WBTC = -0.20,",
            r"portfolio\.targets\.WBTC: Input should be greater than or equal to 0",
        ),
        (
            "LINK = 0.095,",
            "DOGE = 0.095,",
            r"portfolio\.targets\.DOGE: not a configured token or bucket",
        ),
        (
            'usd = ["USDC", "USDT", "DAI"]',
            'usd = ["USDC", "USDT", "GUSD"]',
            r"portfolio\.buckets\.usd: member 'GUSD' is not a configured token",
        ),
        (
            "FOT = 0.005 }",
            "FOT = 0.0, USDC = 0.005 }",
            r"portfolio\.targets\.USDC: USDC is in bucket usd",
        ),
        (
            'address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"',
            'address = "0x1234"',
            r"wallet\.address: '0x1234' is not an Ethereum address",
        ),
        (
            "max_lag_blocks = 5",
            "max_lag_blocks = 5\nsurprise = 1",
            r"chain\.surprise: Extra inputs are not permitted",
        ),
        (
            '{ venue = "uniswap", tokens = ["FOT", "WETH"] },',
            '{ venue = "curve", tokens = ["FOT", "WETH"] },',
            r"pools\[5\]\.venue: unknown venue 'curve'",
        ),
        (
            'stablecoin = "USDC"',
            'stablecoin = "BUSD"',
            r"valuation\.stablecoin: 'BUSD' is not a configured token",
        ),
        (
            'pool = "uniswap:USDC/WETH"',
            'pool = "uniswap:WBTC/USDC"',
            r"portfolio\.lp_entries\[0\]\.pool: no configured pool",
        ),
        ("chain_id = 31337", "chain_id = 0", r"chain\.chain_id: Input should be greater than 0"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, old, new))


def test_checksums_addresses(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '"0x70997970C51812dc3A010C7d01b50e0d17dc79C8"',
        '"0x70997970c51812dc3a010c7d01b50e0d17dc79c8"',
    )
    assert load_settings(path).wallet.address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .* not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[chain\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(broken)


def test_env_overrides_nested_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REBALANCER_CHAIN__MAX_LAG_BLOCKS", "9")
    monkeypatch.setenv("REBALANCER_VALUATION__MAX_TWAP_DEVIATION", "0.02")
    settings = load_settings(ROOT / "config" / "local.toml")
    assert settings.chain.max_lag_blocks == 9
    assert settings.chain.chain_id == 31337  # the rest of the section stays
    assert settings.valuation.max_twap_deviation == 0.02


def test_env_override_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REBALANCER_CHAIN__MAX_LAG_BLOCKS", "-1")
    with pytest.raises(ConfigError, match=r"chain\.max_lag_blocks"):
        load_settings(ROOT / "config" / "local.toml")


def test_rpc_url_flag_beats_env_beats_file(monkeypatch: pytest.MonkeyPatch) -> None:
    path = ROOT / "config" / "local.toml"
    assert load_settings(path).chain.rpc_urls == ["http://127.0.0.1:8545"]
    monkeypatch.setenv("REBALANCER_RPC_URL", "http://127.0.0.1:9999")
    assert load_settings(path).chain.rpc_urls == ["http://127.0.0.1:9999"]
    assert load_settings(path, rpc_url="http://127.0.0.1:7777").chain.rpc_urls == [
        "http://127.0.0.1:7777"
    ]


def test_mainnet_config_asks_for_the_wallet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REBALANCER_WALLET__ADDRESS", raising=False)
    with pytest.raises(ConfigError, match="wallet: Field required"):
        load_settings(ROOT / "config" / "mainnet.toml")
    monkeypatch.setenv("REBALANCER_WALLET__ADDRESS", "0x70997970c51812dc3a010c7d01b50e0d17dc79c8")
    settings = load_settings(ROOT / "config" / "mainnet.toml")
    assert settings.chain.chain_id == 1
    assert settings.wallet.address == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "band_overrides = { FOT = 0.003 }",
            "band_overrides = {}",
            r"strategy\.band_width: a band of 0\.05 is wider than the target of FOT \(0\.005\) allows",
        ),
        (
            "band_overrides = { FOT = 0.003 }",
            "band_overrides = { FOT = 0.006 }",
            r"strategy\.band_overrides\.FOT: a band of 0\.006 is wider",
        ),
        (
            'band = "absolute"',
            'band = "relative"\nband_width_unused = 1',
            r"strategy\.band_width_unused: Extra inputs",
        ),
        (
            "band_width = 0.05 ",
            "band_width = 1.5 ",
            r"strategy\.band_width: a relative band|wider than the target",
        ),
        (
            "interval_seconds = 86400",
            'cron = "every tuesday"',
            r"strategy: cron: 'every tuesday' is not a cron expression",
        ),
        (
            "band_overrides = { FOT = 0.003 }",
            "band_overrides = { FOT = 0.003, DOGE = 0.1 }",
            r"strategy\.band_overrides\.DOGE: not a unit",
        ),
        (
            'hubs = ["WETH", "USDC"]',
            'hubs = ["WETH", "BUSD"]',
            r"execution\.hubs: 'BUSD' is not a configured token",
        ),
        (
            "slippage_bps = 50",
            "slippage_bps = -1",
            r"execution\.slippage_bps: Input should be greater than or equal to 0",
        ),
    ],
)
def test_bad_strategy_fields_are_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, old, new))


def test_a_target_no_pool_can_reach(tmp_path: Path) -> None:
    text = LOCAL.replace('  { venue = "uniswap", tokens = ["FOT", "WETH"] },\n', "")
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(
        ConfigError, match=r"portfolio\.targets\.FOT: no configured pool trades FOT"
    ):
        load_settings(path)
