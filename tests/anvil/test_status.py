"""`rebalancer status` against the fixture chain: numbers match the chain and the dataset."""

from __future__ import annotations

import json
import subprocess
import tomllib

from anvil_fixtures.builder import Fixture
from bot import amm
from bot.paths import ROOT
from tests.conftest import Chain
from tests.helpers import FAR_DEADLINE, MAX_UINT, contract, send
from tests.keeper_helpers import LOCAL_CONFIG, run_cli


def run_status(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("status", "--config", str(LOCAL_CONFIG), "--rpc-url", url, *extra, timeout=60)


def test_local_config_matches_the_fixture_manifest(chain: Chain) -> None:
    config = tomllib.loads((ROOT / "config" / "local.toml").read_text())
    manifest = chain.manifest
    assert config["wallet"]["address"] == manifest["keeper"]["address"]
    assert config["chain"]["chain_id"] == manifest["chain_id"]
    for symbol, token in config["tokens"].items():
        assert token["address"] == manifest["tokens"][symbol]["address"], symbol
        assert token["decimals"] == manifest["tokens"][symbol]["decimals"], symbol
    for name, venue in config["venues"].items():
        assert venue["factory"] == manifest["venues"][name]["factory"]
        assert venue["router"] == manifest["venues"][name]["router"]
    assert {f"{p['venue']}:{'/'.join(p['tokens'])}" for p in config["pools"]} == {
        p["key"] for p in manifest["pools"]
    }
    for entry in config["portfolio"]["lp_entries"]:
        assert [str(entry["amount0"]), str(entry["amount1"])] == chain.pool(entry["pool"])[
            "wallet_lp_deposit"
        ]


def test_status_json_matches_the_chain_and_the_dataset(chain: Chain) -> None:
    result = run_status(chain.url, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    w3 = chain.w3
    manifest = chain.manifest
    keeper = manifest["keeper"]["address"]
    assets = {a["asset"]: a for a in report["assets"]}
    assert report["block"]["number"] == w3.eth.block_number
    assert int(assets["ETH"]["wallet_raw"]) == w3.eth.get_balance(keeper)
    for symbol in manifest["tokens"]:
        on_chain = contract(w3, chain.token(symbol), "IERC20").functions.balanceOf(keeper).call()
        assert int(assets[symbol]["wallet_raw"]) == on_chain, symbol

    # LP amounts equal what removeLiquidity pays (asked of the router itself).
    expected_usd = 0.0
    for position in report["lp_positions"]:
        pool = chain.pool(position["pool"])
        router = contract(w3, manifest["venues"][pool["venue"]]["router"], "IUniswapV2Router02")
        pair = contract(w3, pool["address"], "UniswapV2Pair")
        liquidity = pair.functions.balanceOf(keeper).call()
        assert int(position["liquidity"]) == liquidity
        send(w3, pair.functions.approve(router.address, MAX_UINT), keeper)
        paid = router.functions.removeLiquidity(
            chain.token(pool["token0"]),
            chain.token(pool["token1"]),
            liquidity,
            0,
            0,
            keeper,
            FAR_DEADLINE,
        ).call({"from": keeper})
        assert [int(position["amount0"]), int(position["amount1"])] == list(paid)
        for symbol, amount in zip((pool["token0"], pool["token1"]), paid, strict=True):
            expected_usd += (
                amount
                / 10 ** manifest["tokens"][symbol]["decimals"]
                * manifest["tokens"][symbol]["usd_price"]
            )

    # The whole wallet at the dataset's prices of the scenario date, within 0.05%.
    for symbol, raw in manifest["wallet"]["tokens"].items():
        expected_usd += (
            int(raw)
            / 10 ** manifest["tokens"][symbol]["decimals"]
            * manifest["tokens"][symbol]["usd_price"]
        )
    expected_usd += (
        int(manifest["wallet"]["eth_wei"]) / 1e18 * manifest["tokens"]["WETH"]["usd_price"]
    )
    # The numeraire is USD through USDC, which the dataset prices slightly off $1 that day.
    valued_usd = report["total_value"] * manifest["tokens"]["USDC"]["usd_price"]
    assert abs(valued_usd / expected_usd - 1) < 0.0005
    weights = sum(u["weight"] for u in report["allocation"])
    assert abs(weights - 1) < 1e-12


def test_removing_liquidity_pays_exactly_lp_underlying(chain: Chain) -> None:
    # A real transaction on the fee-on venue: the pending protocol fee is minted first.
    w3 = chain.w3
    keeper = chain.manifest["keeper"]["address"]
    pool = chain.pool("sushiswap:WBTC/WETH")
    pair = contract(w3, pool["address"], "UniswapV2Pair")
    router = contract(w3, chain.manifest["venues"]["sushiswap"]["router"], "IUniswapV2Router02")
    reserve0, reserve1, _ = pair.functions.getReserves().call()
    liquidity = pair.functions.balanceOf(keeper).call()
    expected = amm.lp_underlying(
        liquidity,
        reserve0,
        reserve1,
        pair.functions.totalSupply().call(),
        pair.functions.kLast().call(),
        fee_on=True,
    )
    assert expected != amm.lp_underlying(
        liquidity, reserve0, reserve1, pair.functions.totalSupply().call()
    )
    tokens = [contract(w3, chain.token(pool[f"token{i}"]), "IERC20") for i in (0, 1)]
    before = [t.functions.balanceOf(keeper).call() for t in tokens]
    send(w3, pair.functions.approve(router.address, MAX_UINT), keeper)
    send(
        w3,
        router.functions.removeLiquidity(
            tokens[0].address, tokens[1].address, liquidity, 0, 0, keeper, FAR_DEADLINE
        ),
        keeper,
    )
    after = [t.functions.balanceOf(keeper).call() for t in tokens]
    assert (after[0] - before[0], after[1] - before[1]) == expected


def test_status_table_and_clear_errors(chain: Chain) -> None:
    table = run_status(chain.url)
    assert table.returncode == 0, table.stderr
    for needle in ("total value", "drift", "LP positions", "uniswap:USDC/WETH", "IL vs hold"):
        assert needle in table.stdout
    dead = run_status("http://127.0.0.1:9/v2/SECRET")
    assert dead.returncode == 2
    assert "every RPC endpoint failed" in dead.stderr
    assert "SECRET" not in dead.stderr + dead.stdout


def test_mainnet_config_runs_unchanged_against_the_mirror(mirror_fixture: Fixture) -> None:
    fixture = mirror_fixture
    with fixture.start() as anvil:
        result = run_cli(
            "status",
            "--config",
            str(ROOT / "config" / "mainnet.toml"),
            "--rpc-url",
            anvil.url,
            "--json",
            timeout=60,
            settings={"WALLET__ADDRESS": fixture.manifest["keeper"]["address"]},
        )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["block"]["number"] == fixture.manifest["block_number"]
    held = {a["asset"]: int(a["wallet_raw"]) for a in report["assets"]}
    for symbol, raw in fixture.manifest["wallet"]["tokens"].items():
        if symbol != "FOT":  # the mirror's fee-on-transfer token has no mainnet counterpart
            assert held[symbol] == int(raw)
    assert {p["pool"] for p in report["lp_positions"]} == {
        "uniswap:USDC/WETH",
        "sushiswap:WBTC/WETH",
    }
