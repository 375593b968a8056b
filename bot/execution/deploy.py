"""`rebalancer deploy-executor`: deploy RebalanceExecutor owned by the configured signer."""

from __future__ import annotations

import json

from eth_abi.abi import encode

from bot.execution.calls import Call
from bot.execution.fees import suggest_fees
from bot.execution.sender import Sender
from bot.paths import CONTRACTS_ABI
from bot.settings import Settings


async def deploy_executor(sender: Sender, settings: Settings) -> str:
    """Deploy the executor, allowing exactly the configured venues' factories; its address."""
    artifact = json.loads((CONTRACTS_ABI / "RebalanceExecutor.json").read_text())
    factories = sorted({venue.factory for venue in settings.venues.values()})
    code = bytes.fromhex(artifact["bytecode"][2:]) + encode(["address[]"], [factories])
    fees = await suggest_fees(sender.rpc, settings.execution)
    mined = await sender.wait(await sender.send(Call("", code, "deploy RebalanceExecutor"), fees))
    if mined.status != 1 or mined.contract_address is None:
        raise RuntimeError(f"the executor deployment reverted ({mined.tx_hash})")
    return str(mined.contract_address)
