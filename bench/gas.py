"""Gas of one plan three ways, on the fixture chain, in one run:
  - atomic, vault mode: one RebalanceExecutor call, the executor holding the portfolio;
  - atomic, wallet mode: exact approvals to the executor, then one call;
  - separate Router02 transactions, each preceded by the exact approval it needs.
Prints the gas of each and, last, `ratio <atomic/separate>` (vault mode over separate).

    .venv/bin/python bench/gas.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from eth_typing import HexStr
from web3 import Web3
from web3.types import TxParams

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anvil_fixtures.artifacts import project_artifact
from anvil_fixtures.builder import build
from bot.execution.calls import approve_data, executor_call, router_calls, router_spends
from bot.paths import ROOT
from bot.planner import plan
from bot.settings import Settings, load_settings
from bot.status import read_and_value

LP_TARGETS = {"uniswap:USDC/WETH": 0.02, "sushiswap:WBTC/WETH": 0.20}


def settings_for(url: str, wallet: str) -> Settings:
    base = load_settings(ROOT / "config" / "local.toml", rpc_url=url)
    return base.model_copy(
        update={
            "wallet": base.wallet.model_copy(update={"address": Web3.to_checksum_address(wallet)}),
            "portfolio": base.portfolio.model_copy(update={"lp_targets": LP_TARGETS}),
        }
    )


def gas_of(w3: Web3, sender: str, to: str, data: bytes | HexStr) -> int:
    """Send `data` to `to` from `sender`, and return the gas it used."""
    tx: TxParams = {"from": sender, "to": to, "data": data}
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))
    if receipt["status"] != 1:
        raise RuntimeError(f"a benchmark transaction reverted: {to}")
    return int(receipt["gasUsed"])


def deploy(w3: Web3, keeper: str, manifest: dict[str, Any]) -> tuple[str, int]:
    artifact = project_artifact("RebalanceExecutor")
    factories = [v["factory"] for v in manifest["venues"].values()]
    tx = (
        w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        .constructor(factories)
        .build_transaction({"from": keeper})
    )
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(tx))
    return str(receipt["contractAddress"]), int(receipt["gasUsed"])


def main() -> None:
    fixture = build("default")
    manifest = fixture.manifest
    keeper = manifest["keeper"]["address"]
    pairs = {p["key"]: p["address"] for p in manifest["pools"]}
    erc20 = project_artifact("IERC20")["abi"]
    with fixture.start() as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        base = anvil.rpc("evm_snapshot")

        # separate Router02 transactions, with their approvals
        settings = settings_for(anvil.url, keeper)
        snapshot, view = asyncio.run(read_and_value(settings))
        proposed = plan(
            snapshot, view, settings, {"LINK": 40_000.0, "usd": -40_000.0}, int(time.time()) + 3600
        )
        separate = 0
        approvals: dict[tuple[str, str], int] = {}
        for spend in router_spends(proposed, settings, pairs):
            approvals[(spend.token, spend.spender)] = (
                approvals.get((spend.token, spend.spender), 0) + spend.amount
            )
        for (token, spender), amount in approvals.items():
            separate += gas_of(w3, keeper, token, approve_data(spender, amount))
        for call in router_calls(proposed, settings, pairs, keeper):
            separate += gas_of(w3, keeper, call.to, call.data)
        n_separate = len(approvals) + len(proposed.actions)
        anvil.rpc("evm_revert", base)
        base = anvil.rpc("evm_snapshot")

        # atomic, wallet mode
        executor, deploy_gas = deploy(w3, keeper, manifest)
        data, pulls = executor_call(proposed, settings, pairs, "wallet")
        wallet_mode = 0
        for token, amount in pulls:
            wallet_mode += gas_of(w3, keeper, token, approve_data(executor, amount))
        wallet_mode += gas_of(w3, keeper, executor, data)
        anvil.rpc("evm_revert", base)

        # atomic, vault mode: deposit first (once, not per rebalance), then one call
        executor, _ = deploy(w3, keeper, manifest)
        for address in [*(t["address"] for t in manifest["tokens"].values()), *pairs.values()]:
            erc20_token = w3.eth.contract(address=Web3.to_checksum_address(address), abi=erc20)
            held = erc20_token.functions.balanceOf(keeper).call()
            if held:
                gas_of(w3, keeper, address, erc20_token.encode_abi("transfer", [executor, held]))
        vault_settings = settings_for(anvil.url, executor)
        snapshot, view = asyncio.run(read_and_value(vault_settings))
        vault_plan = plan(
            snapshot,
            view,
            vault_settings,
            {"LINK": 40_000.0, "usd": -40_000.0},
            int(time.time()) + 3600,
        )
        assert [a.kind for a in vault_plan.actions] == [a.kind for a in proposed.actions]
        data, _ = executor_call(vault_plan, vault_settings, pairs, "vault")
        vault = gas_of(w3, keeper, executor, data)

    print(f"plan: {len(proposed.actions)} actions ({', '.join(a.kind for a in proposed.actions)})")
    print(
        f"separate Router02 transactions: {separate:>10,} gas in {n_separate} transactions ({len(approvals)} approvals)"
    )
    print(
        f"atomic, wallet mode:            {wallet_mode:>10,} gas in {len(pulls) + 1} transactions ({len(pulls)} approvals)  ratio {wallet_mode / separate:.3f}"
    )
    print(
        f"atomic, vault mode:             {vault:>10,} gas in 1 transaction  ratio {vault / separate:.3f}"
    )
    print(f"(deploying the executor, once: {deploy_gas:,} gas)")
    print(f"ratio {vault / separate:.3f}")


if __name__ == "__main__":
    main()
