"""Small helpers shared by the chain tests."""

from __future__ import annotations

from typing import Any

from web3 import Web3
from web3.contract import Contract

from anvil_fixtures.artifacts import npm_artifact, project_artifact

MAX_UINT = 2**256 - 1
FAR_DEADLINE = 2**63


def contract(w3: Web3, address: str, abi_name: str) -> Contract:
    """A web3 contract over an ABI from contracts_abi/ (or the npm build for the pair)."""
    abi = (
        npm_artifact(abi_name)["abi"]
        if abi_name.startswith("UniswapV2")
        else project_artifact(abi_name)["abi"]
    )
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)


def send(w3: Web3, call: Any, sender: str, value: int = 0) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(call.transact({"from": sender, "value": value}))
    assert receipt["status"] == 1, "transaction reverted"
    return receipt
