"""A misbehaving JSON-RPC proxy on loopback: forwards to a real node, then bends the answer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

Mutator = Callable[[list[dict[str, Any]], bytes], bytes | None]


class RpcProxy:
    """Serves any path; `mutate(requests, upstream_body)` may replace the body sent back.

    `rewrite(requests)` may change the requests before they are forwarded. `status` forces
    an HTTP status instead of forwarding; `down_for` does the same (HTTP 502) only for requests
    that carry one of those methods. `methods` lists every method received, in order.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mutate: Mutator | None = None
        self.rewrite: Callable[[list[dict[str, Any]]], None] | None = None
        self.status: int | None = None
        self.delay: float = 0.0  # seconds to sit on each request before answering
        self.down_for: frozenset[str] = frozenset()  # methods answered as a node that is down
        self.requests: list[list[dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def methods(self) -> list[str]:
        """Every JSON-RPC method this proxy received, in order, batches flattened."""
        return [str(r.get("method")) for batch in self.requests for r in batch]

    async def __aenter__(self) -> RpcProxy:
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        payload = await request.json()
        batch = payload if isinstance(payload, list) else [payload]
        self.requests.append(batch)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status is not None:
            return web.Response(status=self.status, text="proxy says no")
        if any(r.get("method") in self.down_for for r in batch):
            return web.Response(status=502, text="proxy is down for this method")
        if self.rewrite is not None:
            self.rewrite(batch)
        async with self._session.post(self.upstream, json=payload) as upstream:
            body = await upstream.read()
        if self.mutate is not None:
            changed = self.mutate(batch, body)
            if changed is not None:
                body = changed
        return web.Response(body=body, content_type="application/json")


def replace_result(body: bytes, method_index: int, transform: Callable[[Any], Any]) -> bytes:
    answer = json.loads(body)
    items = answer if isinstance(answer, list) else [answer]
    items[method_index]["result"] = transform(items[method_index]["result"])
    return json.dumps(answer).encode()
