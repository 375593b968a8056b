"""A bundle relay on loopback, backed by an anvil: checks the signature header, simulates
eth_callBundle on a snapshot it reverts, and lands eth_sendBundle in one block."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.crypto import keccak

from bot.chain.anvil import rpc_call


class FakeRelay:
    def __init__(self, chain_url: str) -> None:
        self.chain_url = chain_url
        self.calls: list[tuple[str, str]] = []  # (method, signer address)
        self.include = True  # False: accept bundles but never land them
        self.landed: list[str] = []  # hashes this relay put on chain
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/relay"

    async def __aenter__(self) -> FakeRelay:
        app = web.Application()
        app.router.add_post("/relay", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner:
            await self._runner.cleanup()

    def rpc(self, method: str, *params: Any) -> Any:
        return rpc_call(self.chain_url, method, params)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        address, _, signature = request.headers["X-Flashbots-Signature"].partition(":")
        digest = "0x" + keccak(body).hex()
        recovered = Account.recover_message(encode_defunct(text=digest), signature=signature)
        if recovered != address:
            return web.json_response(
                {"jsonrpc": "2.0", "id": 1, "error": {"code": -32600, "message": "bad signature"}}
            )
        message = json.loads(body)
        method, (bundle,) = message["method"], message["params"]
        self.calls.append((method, address))
        if method == "eth_callBundle":
            result = self._simulate(bundle["txs"])
        else:
            if self.include:
                self.landed += self._land(bundle["txs"])
            result = {"bundleHash": "0x" + keccak(body).hex()}
        return web.json_response({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def _simulate(self, txs: list[str]) -> dict[str, Any]:
        snapshot = self.rpc("evm_snapshot")
        try:
            hashes = self._land(txs)
            results = []
            for tx_hash in hashes:
                receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
                entry: dict[str, Any] = {"txHash": tx_hash}
                if receipt is None or receipt["status"] != "0x1":
                    entry["error"] = "execution reverted"
                results.append(entry)
            return {"results": results}
        finally:
            self.rpc("evm_revert", snapshot)

    def _land(self, txs: list[str]) -> list[str]:
        self.rpc("evm_setAutomine", False)
        try:
            hashes = [self.rpc("eth_sendRawTransaction", raw) for raw in txs]
            self.rpc("evm_mine")
        finally:
            self.rpc("evm_setAutomine", True)
        return hashes
