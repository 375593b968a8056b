"""Calldata for the few view functions the reader needs, and the deployless reader's code."""

from __future__ import annotations

from functools import cache

from eth_utils.abi import function_signature_to_4byte_selector

from bot.paths import CONTRACTS_ABI


def selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


BALANCE_OF = selector("balanceOf(address)")
DECIMALS = selector("decimals()")
GET_RESERVES = selector("getReserves()")
TOTAL_SUPPLY = selector("totalSupply()")
K_LAST = selector("kLast()")
PRICE0_CUMULATIVE = selector("price0CumulativeLast()")
PRICE1_CUMULATIVE = selector("price1CumulativeLast()")
TOKEN0 = selector("token0()")
TOKEN1 = selector("token1()")
FEE_TO = selector("feeTo()")
GET_PAIR = selector("getPair(address,address)")


def address_arg(address: str) -> bytes:
    return bytes.fromhex(address[2:]).rjust(32, b"\0")


@cache
def snapshot_reader_code() -> bytes:
    """Creation code of contracts/SnapshotReader.sol, compiled into contracts_abi/."""
    import json

    artifact = json.loads((CONTRACTS_ABI / "SnapshotReader.json").read_text())
    return bytes.fromhex(artifact["bytecode"][2:])
