"""Replay a market move on a running fixture chain: arbitrage every pool to a date's prices.

The deployer (an unlocked dev account) trades against each pair directly, so the pools end at the
dataset's prices of `day` (within the fee), exactly as arbitrageurs would leave them.
"""

from __future__ import annotations

import math
from datetime import date
from fractions import Fraction
from typing import Any

from web3 import Web3

from anvil_fixtures.artifacts import npm_artifact, project_artifact
from anvil_fixtures.scenario import load_scenario
from bot import amm
from bot.paths import prices_csv
from bot.prices import load_prices


def replay(url: str, manifest: dict[str, Any], day: date) -> dict[str, float]:
    """Move every pool to `day`'s prices; returns each token's USD price that day."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 60}))
    scenario = load_scenario(manifest["scenario"])
    usd = {
        s: float(p)
        for s, p in scenario.model_copy(update={"date": day})
        .usd_prices(load_prices(prices_csv()))
        .items()
    }
    deployer = manifest["deployer"]
    pair_abi = npm_artifact("UniswapV2Pair")["abi"]
    token_abi = project_artifact("FixtureToken")["abi"]
    weth_abi = npm_artifact("WETH9")["abi"]
    tokens = manifest["tokens"]
    w3.provider.make_request("anvil_setBalance", [deployer, hex(10**30)])  # type: ignore[arg-type]

    def send(call: Any, value: int = 0) -> None:
        receipt = w3.eth.wait_for_transaction_receipt(
            call.transact({"from": deployer, "value": value})
        )
        if receipt["status"] != 1:
            raise RuntimeError("a shock trade reverted")

    for pool in manifest["pools"]:
        pair = w3.eth.contract(address=pool["address"], abi=pair_abi)
        r0, r1, _ = pair.functions.getReserves().call()
        t0, t1 = pool["token0"], pool["token1"]
        target = (
            Fraction(usd[t0])
            / Fraction(usd[t1])
            * 10 ** tokens[t1]["decimals"]
            / 10 ** tokens[t0]["decimals"]
        )
        k = r0 * r1
        new0 = math.isqrt(int(k / target))
        if new0 > r0:
            side, amount_in, reserves = t0, (new0 - r0) * 1000 // 997, (r0, r1)
        else:
            new1 = math.isqrt(int(k * target))
            if new1 <= r1:
                continue
            side, amount_in, reserves = t1, (new1 - r1) * 1000 // 997, (r1, r0)
        if amount_in <= 0:
            continue
        out = amm.get_amount_out(amount_in, *reserves)
        token = tokens[side]
        if token["weth"]:
            weth = w3.eth.contract(address=token["address"], abi=weth_abi)
            send(weth.functions.deposit(), value=amount_in)
            send(weth.functions.transfer(pool["address"], amount_in))
        else:
            send(
                w3.eth.contract(address=token["address"], abi=token_abi).functions.mint(
                    pool["address"], amount_in
                )
            )
        # minting straight to the pair: no transfer, so a fee-on-transfer token takes no fee
        amount0_out, amount1_out = (0, out) if side == t0 else (out, 0)
        send(pair.functions.swap(amount0_out, amount1_out, deployer, b""))
    return usd
