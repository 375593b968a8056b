"""Calldata for the few view functions the reader needs, and the deployless reader's code."""

from __future__ import annotations

import json
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


# Where eth_call's state override places the reader's runtime code: an address with no code
# on any chain we know of (the override replaces whatever is there, for that call only).
READER_ADDRESS = "0x00000000000000000000000000000000005eade2"
SNAPSHOT = selector("snapshot(address,address[],address[],address[])")
AGGREGATE = selector("aggregate(address[],bytes[])")


@cache
def snapshot_reader_runtime() -> str:
    """Runtime code of contracts/SnapshotReader.sol (compiled into contracts_abi/), as hex."""
    artifact = json.loads((CONTRACTS_ABI / "SnapshotReader.json").read_text())
    code: str = artifact["deployedBytecode"]
    return code
