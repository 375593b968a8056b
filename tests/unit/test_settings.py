"""Settings: every bad field is named; env overrides apply."""

from __future__ import annotations

import hashlib
import os
import re
import traceback
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from bot.errors import ConfigError
from bot.paths import ROOT
from bot.settings import Settings, load_settings
from tests.faults import Faults, adversarial

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


def no_rebalancer_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("REBALANCER_"):
            monkeypatch.delenv(name)


def test_mainnet_config_asks_for_the_wallet(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's first mainnet step: the error says where the wallet goes, both ways."""
    no_rebalancer_env(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        load_settings(ROOT / "config" / "mainnet.toml")
    assert str(caught.value) == (
        f"{ROOT / 'config' / 'mainnet.toml'}: wallet: required: set [wallet] address in the "
        "file, or REBALANCER_WALLET__ADDRESS in the environment"
    )
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


# --- the schema describes every field ---------------------------------------------------------


def schema_properties(schema: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """Every property of every model in the schema ("Model.field" -> its description), found by
    following $ref, allOf, anyOf, oneOf, items, prefixItems and additionalProperties; and the
    models without a description of their own."""
    defs: dict[str, Any] = schema.get("$defs", {})
    described: dict[str, str] = {}
    undescribed_models: list[str] = []
    seen: set[str] = set()

    def walk(node: Any, model: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, model)
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.removeprefix("#/$defs/")
            if name not in seen:
                seen.add(name)
                walk(defs[name], name)
        if "properties" in node and not str(node.get("description", "")).strip():
            undescribed_models.append(model)
        for field, prop in node.get("properties", {}).items():
            described[f"{model}.{field}"] = str(prop.get("description", "")).strip()
            walk(prop, model)
        for key in ("allOf", "anyOf", "oneOf", "prefixItems", "items", "additionalProperties"):
            walk(node.get(key), model)

    walk(schema, str(schema.get("title", "root")))
    return described, undescribed_models


def model_fields_of(model: type[BaseModel]) -> set[str]:
    """ "Model.field" for every field of `model` and of every model nested in it."""
    out: set[str] = set()
    seen: set[type[BaseModel]] = set()
    todo: list[Any] = [model]
    while todo:
        tp = todo.pop()
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                continue
            seen.add(tp)
            for name, field in tp.model_fields.items():
                out.add(f"{tp.__name__}.{name}")
                todo.append(field.annotation)
        else:
            todo.extend(typing.get_args(tp))
    return out


def test_every_field_is_described_in_the_schema() -> None:
    """`rebalancer config schema` prints this schema: every field of every table says what it
    does, and the walk reaches every field the models have."""
    described, undescribed_models = schema_properties(Settings.model_json_schema())
    assert set(described) == model_fields_of(Settings)
    assert len(described) >= 130
    assert [field for field, text in described.items() if not text] == []
    assert undescribed_models == []
    assert all("\n" not in text for text in described.values())  # one line each


def test_the_schema_walk_notices_a_missing_description() -> None:
    schema = Settings.model_json_schema()
    del schema["$defs"]["RetrySettings"]["properties"]["attempts"]["description"]
    described, _ = schema_properties(schema)
    assert described["RetrySettings.attempts"] == ""


# --- missing fields: where to set them ---------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "chain_id = 31337\n",
            "",
            "chain.chain_id: required: set [chain] chain_id in the file, or "
            "REBALANCER_CHAIN__CHAIN_ID in the environment",
        ),
        (
            "targets = {",
            "# targets = {",
            "portfolio.targets: required: set [portfolio] targets in the file, or "
            "REBALANCER_PORTFOLIO__TARGETS (as JSON) in the environment",
        ),
        (
            'address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"\ndecimals = 18\n',
            'address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"\n',
            "tokens.WETH.decimals: required: set [tokens.WETH] decimals in the file",
        ),
        (
            '{ venue = "uniswap", tokens = ["USDC", "WETH"] },',
            '{ tokens = ["USDC", "WETH"] },',
            "pools[0].venue: required: set pools[0].venue in the file",
        ),
    ],
)
def test_a_missing_field_says_how_to_set_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, old: str, new: str, message: str
) -> None:
    no_rebalancer_env(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, old, new))
    assert str(caught.value).endswith(f": {message}")


def test_the_variable_a_missing_field_names_supplies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_rebalancer_env(monkeypatch)
    path = write(tmp_path, "chain_id = 31337\n", "")
    path.write_text(path.read_text().replace("targets = {", "# targets = {"))
    with pytest.raises(ConfigError, match="REBALANCER_CHAIN__CHAIN_ID in the environment"):
        load_settings(path)
    monkeypatch.setenv("REBALANCER_CHAIN__CHAIN_ID", "31337")
    targets = '{"eth": 0.4, "usd": 0.3, "WBTC": 0.2, "LINK": 0.095, "FOT": 0.005}'
    monkeypatch.setenv("REBALANCER_PORTFOLIO__TARGETS", targets)
    settings = load_settings(path)
    assert settings.chain.chain_id == 31337
    assert settings.portfolio.targets["WBTC"] == 0.2


# --- a private key in the config is refused, never echoed -------------------------------------

KEY = "0x" + hashlib.sha256(b"a key that must never be echoed").hexdigest()
KEY_ADVICE = "looks like a private key, not an address; never put a key in the config"
WALLET = 'address = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"'


def assert_not_echoed(err: ConfigError) -> str:
    """The message, after checking that no form of the key appears in anything it carries."""
    message = str(err)
    shown = "".join([message, repr(err), *traceback.format_exception(err)]).lower()
    assert KEY[2:].lower() not in shown
    assert KEY[2:42].lower() not in shown  # not even the first 40 digits
    assert err.__cause__ is None
    assert err.__context__ is None
    return message


def refused(faults: Faults, path: Path) -> ConfigError:
    """The ConfigError load_settings refuses `path` with: the expected refusal; any other
    exception escaping load_settings is counted."""
    faults.not_applicable("loss", "duplicates", why="no chain: a parser")
    with faults.escaped(ConfigError) as guard:
        load_settings(path)
    assert isinstance(guard.error, ConfigError), f"{path} loaded"
    return guard.error


@adversarial
@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (WALLET, f'address = "{KEY}"', "wallet.address"),
        (WALLET, f'address = "{KEY[2:]}"', "wallet.address"),  # without 0x
        (WALLET, f'address = "{KEY.upper()[2:]}"', "wallet.address"),
        (
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            KEY,
            "tokens.WETH.address",
        ),
        ("0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6", KEY, "venues.uniswap.router"),
        ("confirmations = 1 ", f'executor = "{KEY}"\nconfirmations = 1 ', "execution.executor"),
    ],
)
def test_a_key_in_an_address_field_is_refused_and_not_echoed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: str,
    new: str,
    field: str,
    faults: Faults,
) -> None:
    no_rebalancer_env(monkeypatch)
    message = assert_not_echoed(refused(faults, write(tmp_path, old, new)))
    assert f"{field}: {KEY_ADVICE}" in message
    assert "keystore" in message  # where the key goes instead


@adversarial
def test_a_key_in_the_wallet_variable_is_refused_and_not_echoed(
    monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    no_rebalancer_env(monkeypatch)
    monkeypatch.setenv("REBALANCER_WALLET__ADDRESS", KEY)
    error = refused(faults, ROOT / "config" / "mainnet.toml")
    assert f"wallet.address: {KEY_ADVICE}" in assert_not_echoed(error)


@adversarial
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('hubs = ["WETH", "USDC"]', f'hubs = ["WETH", "{KEY}"]', r"execution\.hubs: '<hidden"),
        ('stablecoin = "USDC"', f'stablecoin = "{KEY[2:]}"', r"valuation\.stablecoin: '<hidden"),
        (
            '{ venue = "uniswap", tokens = ["FOT", "WETH"] },',
            f'{{ venue = "{KEY}", tokens = ["FOT", "WETH"] }},',
            r"pools\[5\]\.venue: unknown venue '<hidden",
        ),
        ("deadband = 0.002 ", f'deadband = "{KEY}" ', r"strategy\.deadband: Input should be"),
        (WALLET, f'address = "{KEY[:-1]}"', r"wallet\.address: a value of 65 characters is not"),
        (WALLET, f'address = "{KEY}00"', r"wallet\.address: a value of 68 characters is not"),
        (WALLET, f"address = {KEY}", r"wallet\.address: Input should be a valid string"),
        (
            'journal = "rebalancer-journal.sqlite"',
            f'journal = "rebalancer-journal.sqlite"\n{KEY[2:]} = 1',
            r"keeper\.<hidden: a long hex string, perhaps a key>: Extra inputs",
        ),
        (
            "daily_loss_cap = 5000",
            f'daily_loss_cap = 5000\n\n[signer]\nkey_env = "{KEY}"',
            r"signer\.key_env: looks like a private key, not a variable's name; never put a key",
        ),
        (
            "daily_loss_cap = 5000",
            'daily_loss_cap = 5000\n\n[signer]\npassword_env = "hunter2 !"',
            r"signer\.password_env: must be the name of an environment variable",
        ),
    ],
)
def test_no_error_echoes_a_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    old: str,
    new: str,
    message: str,
    faults: Faults,
) -> None:
    """Whatever field a key lands in, and whatever pydantic or our checks say about it."""
    no_rebalancer_env(monkeypatch)
    error = refused(faults, write(tmp_path, old, new))
    assert re.search(message, str(error)), str(error)
    assert_not_echoed(error)
    assert "hunter2" not in str(error)
