"""Add many pools to a running fixture chain, for the 200-pool snapshot test and benchmark."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from anvil_fixtures.artifacts import npm_artifact, project_artifact
from anvil_fixtures.builder import DEPLOYER_INDEX, dev_account

SEED_AMOUNT = 10**24  # each side of each new pool


@dataclass(frozen=True)
class WidePools:
    tokens: dict[str, str]  # symbol -> address
    pools: list[tuple[str, str, str]]  # (symbol a, symbol b, pair address)


def add_pools(url: str, manifest: dict[str, Any], count: int) -> WidePools:
    """Deploy enough fresh 18-decimal tokens to create `count` seeded pairs on `uniswap`.

    Transactions go out back to back with explicit nonces; anvil mines each on arrival.
    """
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 120}))
    deployer = dev_account(DEPLOYER_INDEX).address
    nonce = int(w3.eth.get_transaction_count(deployer))

    def send(call: Any, gas: int) -> Any:
        nonlocal nonce
        tx = call.build_transaction({"from": deployer, "nonce": nonce, "gas": gas})
        nonce += 1
        return w3.eth.send_transaction(tx)

    artifact = project_artifact("FixtureToken")
    token_factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    n_tokens = math.ceil((1 + math.sqrt(1 + 8 * count)) / 2)
    deploys = {
        f"W{i:03d}": send(
            token_factory.constructor(f"W{i:03d}", f"W{i:03d}", 18, 0, False), 2_000_000
        )
        for i in range(n_tokens)
    }
    tokens = {
        symbol: str(w3.eth.wait_for_transaction_receipt(tx)["contractAddress"])
        for symbol, tx in deploys.items()
    }
    factory = w3.eth.contract(
        address=manifest["venues"]["uniswap"]["factory"],
        abi=npm_artifact("UniswapV2Factory")["abi"],
    )
    pairs = list(itertools.combinations(sorted(tokens), 2))[:count]
    for a, b in pairs:
        send(factory.functions.createPair(tokens[a], tokens[b]), 3_000_000)
    pools = []
    last = None
    for a, b in pairs:
        pair_address = factory.functions.getPair(tokens[a], tokens[b]).call()
        for symbol in (a, b):
            token = w3.eth.contract(
                address=Web3.to_checksum_address(tokens[symbol]), abi=artifact["abi"]
            )
            send(token.functions.mint(pair_address, SEED_AMOUNT), 200_000)
        pair = w3.eth.contract(address=pair_address, abi=npm_artifact("UniswapV2Pair")["abi"])
        last = send(pair.functions.mint(deployer), 300_000)
        pools.append((a, b, pair_address))
    if last is not None and w3.eth.wait_for_transaction_receipt(last)["status"] != 1:
        raise RuntimeError("seeding the wide pools failed")
    return WidePools(tokens, pools)
