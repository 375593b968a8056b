"""Soak: the live keeper for many cycles on the fixture chain while prices wander at random.

Between cycles a random pool takes a random trade (up to 6% of its reserve), so the keeper
sees drift, rebalances now and then, and skips the rest. Prints cycles by outcome, unhandled
exceptions, and resident memory after warm-up and at the end; last line `memory-growth <pct>`.

    .venv/bin/python bench/soak.py [--cycles 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.types import RPCEndpoint

from anvil_fixtures.artifacts import npm_artifact, project_artifact
from anvil_fixtures.builder import build
from bot import amm
from bot.execution.signer import Signer
from bot.journal import Journal
from bot.keeper import Keeper
from bot.metrics import Metrics
from bot.paths import ROOT
from bot.settings import load_settings


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def wander(w3: Web3, manifest: dict[str, Any], rng: random.Random) -> None:
    """One random trade on one random pool, by the deployer, straight against the pair."""
    pool = rng.choice(manifest["pools"])
    pair = w3.eth.contract(address=pool["address"], abi=npm_artifact("UniswapV2Pair")["abi"])
    r0, r1, _ = pair.functions.getReserves().call()
    zero_in = rng.random() < 0.5
    side = pool["token0"] if zero_in else pool["token1"]
    reserve_in, reserve_out = (r0, r1) if zero_in else (r1, r0)
    amount = max(int(reserve_in * rng.uniform(0.005, 0.06)), 1)
    out = amm.get_amount_out(amount, reserve_in, reserve_out)
    token = manifest["tokens"][side]
    deployer = manifest["deployer"]
    # a generous fee, and each trade waited for: the market maker's trades land at once, in order
    tx = {"from": deployer, "maxFeePerGas": 10**12, "maxPriorityFeePerGas": 10**9}

    def mined(tx_hash: HexBytes) -> None:
        w3.eth.wait_for_transaction_receipt(tx_hash)

    if token["weth"]:
        weth = w3.eth.contract(address=token["address"], abi=npm_artifact("WETH9")["abi"])
        mined(weth.functions.deposit().transact({**tx, "value": amount}))
        mined(weth.functions.transfer(pool["address"], amount).transact(tx))
    else:
        fixture_token = w3.eth.contract(
            address=token["address"], abi=project_artifact("FixtureToken")["abi"]
        )
        mined(fixture_token.functions.mint(pool["address"], amount).transact(tx))
    mined(
        pair.functions.swap(0 if zero_in else out, out if zero_in else 0, deployer, b"").transact(
            tx
        )
    )


async def soak(cycles: int, seed: int) -> None:
    fixture = build("default")
    rng = random.Random(seed)
    with fixture.start() as anvil, tempfile.TemporaryDirectory() as tmp:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        w3.provider.make_request(
            RPCEndpoint("anvil_setBalance"), [fixture.manifest["deployer"], hex(10**30)]
        )
        base = load_settings(ROOT / "config" / "local.toml", rpc_url=anvil.url)
        settings = base.model_copy(
            update={
                "strategy": base.strategy.model_copy(
                    update={"trigger": "threshold", "cooldown_seconds": 0}
                ),
                "valuation": base.valuation.model_copy(update={"max_twap_deviation": 0.5}),
                "keeper": base.keeper.model_copy(
                    update={"daily_loss_cap": 1e12, "max_consecutive_failures": 10**6}
                ),
            }
        )
        journal = Journal(Path(tmp) / "soak.sqlite")
        signer = Signer(Account.from_key(fixture.manifest["keeper"]["private_key"]))
        outcomes: Counter[str] = Counter()
        unhandled = 0
        market_errors = 0
        warm = None
        started = time.monotonic()
        async with Keeper(settings, "live", journal, Metrics(), signer) as keeper:
            for i in range(cycles):
                try:
                    await asyncio.to_thread(wander, w3, fixture.manifest, rng)
                except Exception as err:
                    market_errors += 1
                    print(f"cycle {i}: the random trade failed ({type(err).__name__}); going on")
                try:
                    result = await keeper.cycle()
                    outcomes[result.status] += 1
                    if result.status == "failed":
                        print(f"cycle {i}: failed: {result.reason}")
                except Exception as err:
                    unhandled += 1
                    print(f"cycle {i}: unhandled {type(err).__name__}: {err}")
                if i == min(100, cycles // 5):
                    warm = rss_mib()
        end = rss_mib()
        halted = journal.get_state("halted")
        if halted:
            print(f"halted: {halted}")
        elapsed = time.monotonic() - started
        journal.close()
    assert warm is not None
    growth = (end - warm) / warm * 100
    print(f"cycles: {cycles} in {elapsed:.0f}s ({cycles / elapsed:.1f}/s): {dict(outcomes)}")
    print(f"unhandled exceptions: {unhandled} (random market trades that failed: {market_errors})")
    print(f"resident memory: {warm:.1f} MiB after warm-up, {end:.1f} MiB at the end")
    print(f"memory-growth {growth:.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(soak(args.cycles, args.seed))


if __name__ == "__main__":
    main()
