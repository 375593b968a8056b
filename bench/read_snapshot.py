"""A 200-pool snapshot: the bot's reader against naive per-call web3 reads, in one run.

Starts the fixture chain, adds pools until there are 200, then times the two ways of reading the
same values. Prints both, the round trips, and last a line `speedup <x>`.

    .venv/bin/python bench/read_snapshot.py [--pools 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import tomllib
from pathlib import Path

from web3 import Web3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anvil_fixtures.artifacts import npm_artifact, project_artifact
from anvil_fixtures.builder import build
from anvil_fixtures.wide import add_pools
from bot.chain.connect import rpc_client
from bot.chain.reader import SnapshotReader
from bot.paths import ROOT
from bot.settings import Settings


def naive_read(w3: Web3, settings: Settings, pools: list[str]) -> int:
    """What a straightforward bot does: one web3 contract call per value."""
    wallet = Web3.to_checksum_address(settings.wallet.address)
    erc20 = project_artifact("IERC20")["abi"]
    pair_abi = npm_artifact("UniswapV2Pair")["abi"]
    factory_abi = npm_artifact("UniswapV2Factory")["abi"]
    block = w3.eth.block_number
    reads = 1
    w3.eth.get_balance(wallet, block)
    for token in settings.tokens.values():
        w3.eth.contract(
            address=Web3.to_checksum_address(token.address), abi=erc20
        ).functions.balanceOf(wallet).call(block_identifier=block)
        reads += 1
    for address in pools:
        pair = w3.eth.contract(address=Web3.to_checksum_address(address), abi=pair_abi).functions
        pair.token0().call(block_identifier=block)
        pair.token1().call(block_identifier=block)
        pair.getReserves().call(block_identifier=block)
        pair.totalSupply().call(block_identifier=block)
        pair.kLast().call(block_identifier=block)
        pair.price0CumulativeLast().call(block_identifier=block)
        pair.price1CumulativeLast().call(block_identifier=block)
        pair.balanceOf(wallet).call(block_identifier=block)
        reads += 8
    for venue in settings.venues.values():
        w3.eth.contract(
            address=Web3.to_checksum_address(venue.factory), abi=factory_abi
        ).functions.feeTo().call(block_identifier=block)
        reads += 1
    return reads


async def reader_read(settings: Settings, repeat: int) -> tuple[list[float], int]:
    async with rpc_client(settings) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)
        await reader.snapshot()  # warm the connection, as a running keeper would be
        times = []
        before = rpc.stats.round_trips
        for _ in range(repeat):
            start = time.perf_counter()
            await reader.snapshot()
            times.append(time.perf_counter() - start)
        return times, (rpc.stats.round_trips - before) // repeat


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pools", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    fixture = build("default")
    with fixture.start() as anvil:
        config = tomllib.loads((ROOT / "config" / "local.toml").read_text())
        added = add_pools(anvil.url, fixture.manifest, args.pools - len(config["pools"]))
        config["chain"]["rpc_urls"] = [anvil.url]
        config["valuation"]["twap_window_seconds"] = (
            10**9
        )  # no history read: time the snapshot alone
        for symbol, address in added.tokens.items():
            config["tokens"][symbol] = {"address": address, "decimals": 18}
        config["pools"] += [
            {"venue": "uniswap", "tokens": [a, b], "address": p} for a, b, p in added.pools
        ]
        settings = Settings(**config)
        pool_addresses = [fixture_pool["address"] for fixture_pool in fixture.manifest["pools"]]
        pool_addresses += [p for _, _, p in added.pools]

        w3 = Web3(Web3.HTTPProvider(anvil.url))
        naive_read(w3, settings, pool_addresses)  # warm up
        naive_times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            reads = naive_read(w3, settings, pool_addresses)
            naive_times.append(time.perf_counter() - start)
        reader_times, round_trips = asyncio.run(reader_read(settings, args.repeat))

    naive = statistics.median(naive_times)
    ours = statistics.median(reader_times)
    print(f"pools: {len(settings.pools)}, values per snapshot: {reads}")
    print(f"naive web3, one call per value: {naive * 1000:9.1f} ms  ({reads} round trips)")
    print(f"snapshot reader:                {ours * 1000:9.1f} ms  ({round_trips} round trips)")
    print(f"speedup {naive / ours:.1f}")


if __name__ == "__main__":
    main()
