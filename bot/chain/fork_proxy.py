"""A loopback JSON-RPC forwarder, so that an anvil fork never learns the upstream URL.

RPC URLs carry API keys (in the path, the query or as user:password), and a process's command
line is world-readable (/proc/PID/cmdline). anvil 1.7.1 takes its fork endpoint as
`--fork-url URL`; it has no environment variable for it. It would resolve an alias from the
`[rpc_endpoints]` table of a foundry.toml in its working directory, but it then still prints the
full URL in its banner and in every upstream error it answers with. So the keeper hands anvil
`http://127.0.0.1:PORT` and forwards each POST body, unchanged (single requests and batches
alike), to the real upstream, whose URL stays in this process's memory.

The forwarder runs its own event loop on its own thread: the code driving anvil may block (the
process helpers in `bot/chain/anvil.py` are synchronous), and anvil fetches state through here
while it answers. Upstream failures are answered with HTTP 502 and remembered in `failure`,
naming the upstream only by `redact`: scheme, host and port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web

from bot.chain.rpc import redact
from bot.errors import SetupError

log = logging.getLogger(__name__)

# A fork has no business sending or signing anything upstream: a dry-run must send nothing.
REFUSED_PREFIXES = ("eth_send", "eth_sign", "personal_", "admin_", "miner_")
MAX_BODY = 64 * 1024 * 1024


def scrub(text: str, url: str) -> str:
    """`text` with the secret parts of `url` (the URL, userinfo, path, query) replaced by ***.

    For messages that come from elsewhere (a subprocess, a library): what the keeper writes
    itself names the endpoint with `redact`, which never contains them in the first place.
    """
    parts = urlsplit(url)
    pieces = {url, parts.query, parts.path.strip("/"), parts.password or ""}
    if parts.password:  # a bare user name is not a secret; with a password it may be the key
        pieces.add(parts.username or "")
    pieces = {p for p in pieces if len(p) >= 4}
    # a key alone, out of its URL: a path segment or a query value long enough to be one
    pieces |= {s for s in parts.path.split("/") if len(s) >= 8}
    pieces |= {v for _, v in parse_qsl(parts.query) if len(v) >= 8}
    for piece in sorted(pieces, key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def _refused(body: bytes) -> tuple[Any, list[Any]] | None:
    """(the parsed body, its requests) when one of them calls a refused method, else None."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None  # not ours to judge: the upstream answers it
    items = payload if isinstance(payload, list) else [payload]
    methods = [str(item.get("method", "")) for item in items if isinstance(item, dict)]
    if any(m.startswith(REFUSED_PREFIXES) for m in methods):
        return payload, items
    return None


class ForkProxy:
    """Forwards JSON-RPC POSTs from `url` (127.0.0.1, a free port) to `upstream`.

    Use as a context manager, or `start()` / `stop()`. `failure` is the last upstream failure,
    redacted, or None when the last forwarded request was answered.
    """

    def __init__(self, upstream: str, *, timeout_seconds: float = 30.0) -> None:
        self.upstream = upstream
        self.label = redact(upstream)
        self.timeout_seconds = timeout_seconds
        self.port = 0
        self.forwarded = 0  # HTTP requests answered by the upstream (a batch counts once)
        self.failure: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._run, args=(sock,), name=f"fork-proxy-{self.port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout) or self._start_error is not None:
            self.stop()
            raise SetupError(
                f"the dry-run fork's RPC forwarder did not start: {self._start_error!r}"
            )
        return self

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the forwarder's thread ---------------------------------------------------------------
    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(sock))
        except BaseException as err:  # reported to the thread that starts the forwarder
            self._start_error = err
        finally:
            self._ready.set()
            sock.close()
            loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("POST", "/{tail:.*}", self._forward)
        # On stop, a request still waiting on the upstream is dropped after a second: the fork
        # that asked for it is gone by then.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            await web.SockSite(runner, sock).start()
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        body = await request.read()
        refused = _refused(body)
        if refused is not None:
            return _refusal(*refused)
        try:
            async with self._session.post(
                self.upstream, data=body, headers={"Content-Type": "application/json"}
            ) as response:
                answer = await response.read()
                status = response.status
                content_type = response.content_type
        except (aiohttp.ClientError, TimeoutError) as err:
            # The exception text can carry the full URL: only its type goes on.
            return self._failed(type(err).__name__)
        if status != 200:
            self._note(f"HTTP {status}")
        else:
            self.forwarded += 1
            self.failure = None
        return web.Response(status=status, body=answer, content_type=content_type)

    def _failed(self, what: str) -> web.Response:
        self._note(what)
        return web.Response(status=502, text=f"upstream {self.label} failed: {what}")

    def _note(self, what: str) -> None:
        if self._stopping is not None and self._stopping.is_set():
            return  # a request cut short by stop(): the upstream is not to blame
        failure = f"{self.label}: {what}"
        if failure != self.failure:  # once per kind of failure, not once per retry
            log.warning("anvil fork: the upstream RPC %s", failure)
        self.failure = failure


def _refusal(payload: Any, items: list[Any]) -> web.Response:
    def error(item: Any) -> dict[str, Any]:
        method = item.get("method") if isinstance(item, dict) else None
        return {
            "jsonrpc": "2.0",
            "id": item.get("id") if isinstance(item, dict) else None,
            "error": {
                "code": -32601,
                "message": f"the dry-run fork does not forward {method} upstream",
            },
        }

    answer = [error(item) for item in items] if isinstance(payload, list) else error(payload)
    return web.json_response(answer)
