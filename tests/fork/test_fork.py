"""A second anvil forking the fixture chain at a pinned block, and a real mainnet fork on request."""

from __future__ import annotations

from web3 import Web3

from bot.chain.anvil import AnvilProcess
from tests.conftest import Chain
from tests.helpers import contract, send


def test_fork_sees_the_fixture_state_at_the_pinned_block(forked: tuple[Chain, Chain]) -> None:
    parent, fork = forked
    assert fork.w3.eth.block_number == parent.manifest["block_number"]
    for pool in parent.manifest["pools"]:
        pair_on_parent = contract(parent.w3, pool["address"], "UniswapV2Pair")
        pair_on_fork = contract(fork.w3, pool["address"], "UniswapV2Pair")
        assert (
            pair_on_fork.functions.getReserves().call()
            == pair_on_parent.functions.getReserves().call()
        )
        assert str(pair_on_fork.functions.getReserves().call()[0]) == pool["reserve0"]


def test_fork_writes_do_not_reach_the_parent(forked: tuple[Chain, Chain]) -> None:
    parent, fork = forked
    keeper = parent.manifest["keeper"]["address"]
    usdc_fork = contract(fork.w3, parent.token("USDC"), "IERC20")
    usdc_parent = contract(parent.w3, parent.token("USDC"), "IERC20")
    before = usdc_parent.functions.balanceOf(keeper).call()
    send(fork.w3, usdc_fork.functions.transfer(parent.manifest["deployer"], 12345), keeper)
    assert usdc_fork.functions.balanceOf(keeper).call() == before - 12345
    assert usdc_parent.functions.balanceOf(keeper).call() == before
    assert parent.w3.eth.block_number == parent.manifest["block_number"]


def test_real_mainnet_fork(mainnet_fork_url: str) -> None:
    with AnvilProcess(fork_url=mainnet_fork_url, chain_id=1) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        factory = contract(w3, "0x5C69bEe701ef814a2B6a3EDD4B1652CB9cc5aA6f", "IUniswapV2Factory")
        usdc, weth = (
            "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
            "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        )
        pair = factory.functions.getPair(usdc, weth).call()
        assert pair == "0xB4e16d0168e52d35CaCD2c6185b44281Ec28C9Dc"
        reserve0, reserve1, _ = contract(w3, pair, "UniswapV2Pair").functions.getReserves().call()
        assert min(reserve0, reserve1) > 0
