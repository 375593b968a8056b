"""A bundle relay client (eth_callBundle / eth_sendBundle, the Flashbots relay API) over aiohttp.

The Python Flashbots client pins web3 < 7, so the two calls are written here. Every request is
signed with an identity key (not the trading key) in the X-Flashbots-Signature header:
"<address>:<signature of keccak256(body) as hex text>". The relay URL may carry a key: it is
logged redacted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from bot.chain.rpc import redact
from bot.errors import BundleReverted, TemporaryError

log = logging.getLogger(__name__)


def signature_header(identity: LocalAccount, body: bytes) -> str:
    digest = "0x" + keccak(body).hex()
    signed = identity.sign_message(encode_defunct(text=digest))
    return f"{identity.address}:0x{bytes(signed.signature).hex()}"


class BundleRelay:
    def __init__(
        self, url: str, identity: LocalAccount | None = None, timeout: float = 10.0
    ) -> None:
        self.url = url
        # A reputation key for the relay; a fresh one is fine, it holds nothing.
        self.identity = identity or Account.create()
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _request(self, method: str, params: list[Any]) -> Any:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Flashbots-Signature": signature_header(self.identity, body),
        }
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(self.url, data=body, headers=headers) as response,
            ):
                text = await response.text()
                if response.status != 200:
                    raise TemporaryError(
                        f"relay {redact(self.url)} answered HTTP {response.status}"
                    )
        except (aiohttp.ClientError, TimeoutError) as err:
            raise TemporaryError(f"relay {redact(self.url)}: {type(err).__name__}") from None
        try:
            answer = json.loads(text)
        except ValueError:
            raise TemporaryError(f"relay {redact(self.url)} sent a body that is not JSON") from None
        if "error" in answer:
            raise TemporaryError(
                f"relay {method}: {answer['error'].get('message', answer['error'])}"
            )
        return answer.get("result")

    async def call_bundle(
        self, raw_txs: Sequence[bytes], block_number: int, state_block: str = "latest"
    ) -> dict[str, Any]:
        """Simulate the bundle on top of `state_block`; raises BundleReverted on any revert."""
        result = await self._request(
            "eth_callBundle",
            [
                {
                    "txs": ["0x" + raw.hex() for raw in raw_txs],
                    "blockNumber": hex(block_number),
                    "stateBlockNumber": state_block,
                }
            ],
        )
        for item in (result or {}).get("results", []):
            why = item.get("error") or item.get("revert")
            if why:
                raise BundleReverted(f"bundle simulation: {item.get('txHash')} reverts ({why})")
        return dict(result or {})

    async def send_bundle(self, raw_txs: Sequence[bytes], block_number: int) -> str | None:
        """Ask for inclusion of the whole bundle, in order, in `block_number` (or not at all)."""
        result = await self._request(
            "eth_sendBundle",
            [{"txs": ["0x" + raw.hex() for raw in raw_txs], "blockNumber": hex(block_number)}],
        )
        bundle_hash = (result or {}).get("bundleHash")
        log.info(
            "bundle of %d sent to %s for block %d", len(raw_txs), redact(self.url), block_number
        )
        return None if bundle_hash is None else str(bundle_hash)
