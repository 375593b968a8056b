"""Storage slots and eth_call state overrides for the fixture's contracts.

Property tests put arbitrary reserves, supplies and balances into a pair with an eth_call state
override, then ask Router02 what it would do: nothing is written, so thousands of cases run
against one chain without resets.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from eth_abi.abi import decode, encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.crypto import keccak

# UniswapV2ERC20 + UniswapV2Pair storage layout (v2-core)
PAIR_TOTAL_SUPPLY = 0
PAIR_BALANCE_OF = 1
PAIR_ALLOWANCE = 2
PAIR_RESERVES = 8  # reserve0 (uint112) | reserve1 (uint112) << 112 | blockTimestampLast << 224
PAIR_K_LAST = 11
# token balance / allowance mappings: FixtureToken declares them first, WETH9 after 3 strings
TOKEN_SLOTS = {"fixture": (0, 1), "weth9": (3, 4)}


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def mapping_slot(key: str | int, slot: int) -> int:
    raw_key = (
        bytes.fromhex(key[2:]).rjust(32, b"\0") if isinstance(key, str) else key.to_bytes(32, "big")
    )
    return int.from_bytes(keccak(raw_key + slot.to_bytes(32, "big")), "big")


def nested_slot(outer: str, inner: str, slot: int) -> int:
    return mapping_slot(inner, mapping_slot(outer, slot))


def reserves_word(reserve0: int, reserve1: int, timestamp: int = 1) -> int:
    return reserve0 | (reserve1 << 112) | (timestamp << 224)


class Overrides:
    """Accumulates {address: {slot: value}} for eth_call's state override argument."""

    def __init__(self) -> None:
        self._diff: dict[str, dict[str, str]] = {}

    def set(self, address: str, slot: int, value: int) -> Overrides:
        self._diff.setdefault(address, {})[word(slot)] = word(value)
        return self

    def as_param(self) -> dict[str, Any]:
        return {address: {"stateDiff": diff} for address, diff in self._diff.items()}


class RevertError(Exception):
    pass


class FastRpc:
    """A blocking JSON-RPC client on one kept-alive connection (tests call it thousands of times)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=30
        )
        self._id = 0

    def request(self, method: str, *params: Any) -> Any:
        self._id += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "id": self._id, "method": method, "params": list(params)}
        )
        self._conn.request("POST", "/", body, {"Content-Type": "application/json"})
        answer = json.loads(self._conn.getresponse().read())
        if "error" in answer:
            raise RevertError(answer["error"].get("message", str(answer["error"])))
        return answer["result"]

    def call(
        self,
        to: str,
        signature: str,
        arg_types: list[str],
        args: list[Any],
        out_types: list[str],
        *,
        sender: str | None = None,
        overrides: Overrides | None = None,
    ) -> tuple[Any, ...]:
        data = function_signature_to_4byte_selector(signature) + encode(arg_types, args)
        tx: dict[str, Any] = {"to": to, "data": "0x" + data.hex()}
        if sender:
            tx["from"] = sender
        params: list[Any] = [tx, "latest"]
        if overrides is not None:
            params.append(overrides.as_param())
        result = self.request("eth_call", *params)
        return tuple(decode(out_types, bytes.fromhex(result[2:])))

    def close(self) -> None:
        self._conn.close()
