"""The default fixture chain: real Uniswap V2 bytecode, dataset prices, the keeper's wallet."""

from __future__ import annotations

from fractions import Fraction

import pytest
from eth_utils.crypto import keccak
from web3 import Web3

from anvil_fixtures.artifacts import npm_artifact
from anvil_fixtures.builder import build
from bot.paths import prices_csv
from bot.prices import load_prices
from tests.conftest import Chain
from tests.helpers import FAR_DEADLINE, MAX_UINT, contract, send

MAINNET_INIT_CODE_HASH = "0x96e8ac4277198ff8b6f785478aa9a39f403cb768dd02cbee326c3e7da348845f"


def test_pair_init_code_hash_is_mainnets() -> None:
    bytecode = bytes.fromhex(npm_artifact("UniswapV2Pair")["bytecode"][2:])
    assert "0x" + keccak(bytecode).hex() == MAINNET_INIT_CODE_HASH


def test_pairs_sit_at_their_create2_addresses(chain: Chain) -> None:
    for pool in chain.manifest["pools"]:
        factory = chain.manifest["venues"][pool["venue"]]["factory"]
        a, b = sorted(bytes.fromhex(chain.token(s)[2:]) for s in (pool["token0"], pool["token1"]))
        digest = keccak(
            b"\xff"
            + bytes.fromhex(factory[2:])
            + keccak(a + b)
            + bytes.fromhex(MAINNET_INIT_CODE_HASH[2:])
        )
        assert Web3.to_checksum_address(digest[12:]) == pool["address"], pool["key"]


def test_every_pool_price_matches_the_dataset(chain: Chain) -> None:
    table = load_prices(prices_csv())
    day = __import__("datetime").date.fromisoformat(chain.manifest["date"])
    columns = {"WETH": "ETH", "DAI": "USDC", "FOT": "LINK"}
    w3 = chain.w3
    assert len(chain.manifest["pools"]) == 12
    for pool in chain.manifest["pools"]:
        pair = contract(w3, pool["address"], "UniswapV2Pair")
        reserve0, reserve1, _ = pair.functions.getReserves().call()
        tokens = chain.manifest["tokens"]
        t0, t1 = pool["token0"], pool["token1"]
        mid = Fraction(reserve1, 10 ** tokens[t1]["decimals"]) / Fraction(
            reserve0, 10 ** tokens[t0]["decimals"]
        )
        want = Fraction(str(table.price(day, columns.get(t0, t0)))) / Fraction(
            str(table.price(day, columns.get(t1, t1)))
        )
        assert abs(mid / want - 1) < Fraction(1, 10_000), pool["key"]


def test_venues_have_different_depths_and_one_protocol_fee(chain: Chain) -> None:
    uni = int(chain.pool("uniswap:USDC/WETH")["reserve0"])
    sushi = int(chain.pool("sushiswap:USDC/WETH")["reserve0"])
    assert uni > 2 * sushi
    fees = {name: v["fee_to"] != "0x" + "0" * 40 for name, v in chain.manifest["venues"].items()}
    assert fees == {"uniswap": False, "sushiswap": True}
    factory = contract(
        chain.w3, chain.manifest["venues"]["sushiswap"]["factory"], "IUniswapV2Factory"
    )
    assert factory.functions.feeTo().call() == chain.manifest["venues"]["sushiswap"]["fee_to"]
    # The builder's warm-up trades leave a protocol fee pending on the fee-on venue.
    pair = contract(chain.w3, chain.pool("sushiswap:WBTC/WETH")["address"], "UniswapV2Pair")
    reserve0, reserve1, _ = pair.functions.getReserves().call()
    assert reserve0 * reserve1 > pair.functions.kLast().call() > 0


def test_wallet_holds_tokens_eth_and_lp(chain: Chain) -> None:
    w3 = chain.w3
    keeper = chain.manifest["keeper"]["address"]
    assert w3.eth.get_balance(keeper) == 25 * 10**18
    for symbol, amount in chain.manifest["wallet"]["tokens"].items():
        token = contract(w3, chain.token(symbol), "IERC20")
        assert token.functions.balanceOf(keeper).call() == int(amount) > 0, symbol
    for key in ("uniswap:USDC/WETH", "sushiswap:WBTC/WETH"):
        pair = contract(w3, chain.pool(key)["address"], "UniswapV2Pair")
        assert pair.functions.balanceOf(keeper).call() == int(chain.pool(key)["wallet_lp"]) > 0


def test_token_decimals_and_behaviours(chain: Chain) -> None:
    w3 = chain.w3
    decimals = {
        s: contract(w3, chain.token(s), "FixtureToken").functions.decimals().call()
        for s in ("USDC", "USDT", "WBTC", "DAI", "LINK", "FOT")
    }
    assert decimals == {"USDC": 6, "USDT": 6, "WBTC": 8, "DAI": 18, "LINK": 18, "FOT": 18}
    keeper = chain.manifest["keeper"]["address"]
    other = chain.manifest["deployer"]
    usdt = contract(w3, chain.token("USDT"), "FixtureToken")
    send(w3, usdt.functions.approve(other, 5), keeper)
    with pytest.raises(Exception, match="approve from non-zero"):
        usdt.functions.approve(other, 7).call({"from": keeper})
    send(w3, usdt.functions.approve(other, 0), keeper)
    send(w3, usdt.functions.approve(other, 7), keeper)
    fot = contract(w3, chain.token("FOT"), "FixtureToken")
    send(w3, fot.functions.transfer(other, 10_000), keeper)
    assert fot.functions.balanceOf(other).call() == 9_900  # 1% burned on transfer


def test_router_swap_and_add_liquidity_work(chain: Chain) -> None:
    w3 = chain.w3
    keeper = chain.manifest["keeper"]["address"]
    router = contract(w3, chain.manifest["venues"]["uniswap"]["router"], "IUniswapV2Router02")
    usdc = contract(w3, chain.token("USDC"), "IERC20")
    weth = contract(w3, chain.token("WETH"), "IERC20")
    pair = contract(w3, chain.pool("uniswap:USDC/WETH")["address"], "UniswapV2Pair")
    send(w3, usdc.functions.approve(router.address, MAX_UINT), keeper)
    send(w3, weth.functions.approve(router.address, MAX_UINT), keeper)

    path = [usdc.address, weth.address]
    amount_in = 10_000 * 10**6
    quoted = router.functions.getAmountsOut(amount_in, path).call()[-1]
    weth_before = weth.functions.balanceOf(keeper).call()
    send(
        w3,
        router.functions.swapExactTokensForTokens(amount_in, quoted, path, keeper, FAR_DEADLINE),
        keeper,
    )
    assert weth.functions.balanceOf(keeper).call() - weth_before == quoted > 0

    lp_before = pair.functions.balanceOf(keeper).call()
    send(
        w3,
        router.functions.addLiquidity(
            usdc.address, weth.address, 1_000 * 10**6, 10**18, 0, 0, keeper, FAR_DEADLINE
        ),
        keeper,
    )
    assert pair.functions.balanceOf(keeper).call() > lp_before


def test_mirror_mode_places_pairs_at_mainnet_addresses(mirror_fixture: object) -> None:
    fixture = build("default", mirror=True)
    pools = {p["key"]: p["address"] for p in fixture.manifest["pools"]}
    assert pools["uniswap:USDC/WETH"] == "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"
    assert fixture.manifest["chain_id"] == 1
    assert (
        fixture.manifest["tokens"]["USDC"]["address"]
        == "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    )
    assert (
        fixture.manifest["venues"]["uniswap"]["router"]
        == "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D"
    )
    with fixture.start() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        factory = contract(w3, "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f", "IUniswapV2Factory")
        usdc, weth = (
            "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        )
        assert (
            factory.functions.getPair(usdc, weth).call()
            == "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"
        )
        router = contract(w3, "0x7a250d5630B4cF539739dF2C5dAcb4c659F2488D", "IUniswapV2Router02")
        assert router.functions.WETH().call() == weth
        out = router.functions.getAmountsOut(10**18, [weth, usdc]).call()[-1]
        assert (
            190 * 10**6 < out < 196 * 10**6
        )  # one ETH at the 2020-03-11 price, less fee and impact
        token = contract(w3, usdc, "FixtureToken")
        assert (token.functions.symbol().call(), token.functions.decimals().call()) == ("USDC", 6)


def test_build_is_deterministic_and_cached(default_fixture: object) -> None:
    first = build("default")
    again = build("default")
    assert again.manifest == first.manifest  # cached: same inputs, same build
    rebuilt = build("default", force=True)
    assert (
        rebuilt.manifest == first.manifest
    )  # rebuilt from scratch: the same chain, block hash included
