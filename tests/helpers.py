"""Small helpers shared by the chain tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import TxReceipt, Wei

from anvil_fixtures.artifacts import npm_artifact, project_artifact
from tests.conftest import Chain

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


def send(
    w3: Web3, call: ContractFunction | ContractConstructor, sender: str, value: int = 0
) -> TxReceipt:
    """Send `call` from `sender` (anvil signs for its dev accounts) and wait for it to succeed."""
    tx_hash = call.transact({"from": sender, "value": Wei(value)})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt["status"] == 1, "transaction reverted"
    return receipt


@contextmanager
def automine_off(chain: Chain) -> Iterator[None]:
    """Transactions wait in the pool until the test mines a block (evm_mine); anvil mines each
    transaction at once again afterwards, however the block exits."""
    chain.rpc("evm_setAutomine", False)
    try:
        yield
    finally:
        chain.rpc("evm_setAutomine", True)
