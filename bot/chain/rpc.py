"""JSON-RPC over aiohttp: batching, endpoint fallback, retry policy as data, redacted URLs.

Why not AsyncWeb3 for reads: the snapshot's round-trip budget (two per snapshot, whatever the
number of pools) and per-endpoint chain-id and lag checks need direct control of what goes in
each HTTP request. web3 stays in use for contracts and signing.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import aiohttp

from bot.errors import (
    ConfigError,
    DataError,
    LocalResourceError,
    NotDelivered,
    RebalancerError,
    RpcError,
    TemporaryError,
)

log = logging.getLogger(__name__)

RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
# This process (EMFILE) or the whole host (ENFILE) is out of file descriptors.
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


def redact(url: str) -> str:
    """The URL without anything that may be a secret: path, query and credentials.

    Providers put API keys in the path (/v2/KEY) or the query (?apikey=); only scheme, host
    and port are safe to log.
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    hidden = "/***" if (parts.path.strip("/") or parts.query or parts.username) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the RPC boundary retries transient failures (the only place that retries)."""

    attempts: int = 3
    backoff_seconds: float = 0.2
    backoff_multiplier: float = 2.0
    timeout_seconds: float = 10.0
    retry_http_statuses: frozenset[int] = RETRYABLE_HTTP

    def delays(self) -> list[float]:
        return [self.backoff_seconds * self.backoff_multiplier**i for i in range(self.attempts - 1)]


@dataclass(frozen=True, slots=True)
class RpcRequest:
    method: str
    params: Sequence[Any] = ()


def out_of_descriptors(err: BaseException) -> bool:
    """Whether `err`, or an error it was raised from, is EMFILE / ENFILE ("Too many open files")."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, LocalResourceError):
            return True
        if isinstance(current, OSError) and current.errno in OUT_OF_DESCRIPTORS:
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass
class Endpoint:
    url: str
    verified: bool = False
    failures: int = 0

    @property
    def label(self) -> str:
        return redact(self.url)


@dataclass
class RpcStats:
    """Counters the metrics and the tests read."""

    round_trips: int = 0
    requests: dict[tuple[str, str], int] = field(default_factory=dict)

    def count(self, method: str, result: str) -> None:
        key = (method, result)
        self.requests[key] = self.requests.get(key, 0) + 1


class RpcClient:
    """Talks to the first healthy endpoint; falls over to the next on transient failure.

    Each endpoint is verified once before use: its chain id must match, and its head must not
    lag the best known head by more than `max_lag_blocks`.
    """

    def __init__(
        self,
        urls: Sequence[str],
        *,
        chain_id: int,
        retry: RetryPolicy | None = None,
        max_lag_blocks: int = 5,
        on_request: Callable[[Sequence[RpcRequest]], None] | None = None,
    ) -> None:
        if not urls:
            raise ConfigError("chain.rpc_urls: at least one RPC URL is required")
        self.endpoints = [Endpoint(url) for url in urls]
        self.chain_id = chain_id
        self.retry = retry or RetryPolicy()
        self.max_lag_blocks = max_lag_blocks
        self.stats = RpcStats()
        self._ids = itertools.count(1)
        self._current = 0
        self._session: aiohttp.ClientSession | None = None
        self._on_request = on_request  # test hook: runs before each HTTP request
        self._out_of_descriptors = False  # logged once per episode, not once per request

    async def __aenter__(self) -> Self:
        timeout = aiohttp.ClientTimeout(total=self.retry.timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- public ---------------------------------------------------------------------------
    async def call(self, method: str, *params: Any) -> Any:
        (result,) = await self.batch([RpcRequest(method, params)])
        return result

    async def batch(
        self, requests: Sequence[RpcRequest], *, allow_errors: bool = False
    ) -> list[Any]:
        """Send `requests` in one HTTP request; results in order.

        A JSON-RPC error in any item raises RpcError, or with `allow_errors` stands in the
        result list in place of that item's result.
        """
        last_error: Exception | None = None
        delivered = False  # whether any endpoint may have received the request
        # Start from the endpoint that last worked, so a dead primary costs one failure, not one
        # per request; the others are still tried, in order, when it fails.
        order = self.endpoints[self._current :] + self.endpoints[: self._current]
        for endpoint in order:
            try:
                if not endpoint.verified:
                    await self._verify(endpoint)
                results = await self._with_retries(endpoint, requests)
                for item in results:
                    if isinstance(item, RpcError) and not allow_errors:
                        raise item
                self._current = self.endpoints.index(endpoint)
                return results
            except RebalancerError as err:
                if not err.endpoint_fault:
                    # e.g. RpcError (the node understood and refused, another node would too) or
                    # LocalResourceError (our fault, not this endpoint's; the next would fail too)
                    raise
                endpoint.failures += 1
                last_error = err
                delivered = delivered or not isinstance(err, NotDelivered)
                log.warning("rpc endpoint %s failed (%s); trying the next", endpoint.label, err)
        failed = NotDelivered if not delivered else TemporaryError
        raise failed(f"every RPC endpoint failed; last error: {last_error}")

    # --- internals ------------------------------------------------------------------------
    async def _verify(self, endpoint: Endpoint) -> None:
        answers = await self._with_retries(
            endpoint, [RpcRequest("eth_chainId"), RpcRequest("eth_blockNumber")]
        )
        for answer in answers:
            if isinstance(answer, RpcError):
                raise DataError(f"endpoint {endpoint.label} refused {answer.method}: {answer}")
        chain_hex, head_hex = answers
        chain_id = int(chain_hex, 16)
        if chain_id != self.chain_id:
            raise DataError(
                f"endpoint {endpoint.label} is on chain id {chain_id}, but the config says "
                f"{self.chain_id}: fix chain.chain_id or the URL"
            )
        head = int(head_hex, 16)
        best = await self._best_head(exclude=endpoint)
        if best is not None and best - head > self.max_lag_blocks:
            raise DataError(
                f"endpoint {endpoint.label} is {best - head} blocks behind the others "
                f"(limit chain.max_lag_blocks={self.max_lag_blocks})"
            )
        endpoint.verified = True

    async def _best_head(self, exclude: Endpoint) -> int | None:
        others = [e for e in self.endpoints if e is not exclude]
        if not others:
            return None

        async def head(endpoint: Endpoint) -> int | None:
            try:
                (value,) = await self._post(endpoint, [RpcRequest("eth_blockNumber")])
                return int(value, 16)
            except (TemporaryError, DataError, ValueError, TypeError):
                return None

        heads = [h for h in await asyncio.gather(*(head(e) for e in others)) if h is not None]
        return max(heads) if heads else None

    async def _with_retries(self, endpoint: Endpoint, requests: Sequence[RpcRequest]) -> list[Any]:
        delays = self.retry.delays()
        maybe_delivered = False
        for attempt in range(self.retry.attempts):
            try:
                return await self._post(endpoint, requests)
            except RebalancerError as err:
                if not err.retryable:
                    raise
                maybe_delivered = maybe_delivered or not isinstance(err, NotDelivered)
                if attempt == len(delays):
                    if maybe_delivered and isinstance(err, NotDelivered):
                        raise TemporaryError(str(err)) from None  # an earlier try may have
                    raise
                await asyncio.sleep(delays[attempt])
        raise AssertionError("unreachable")

    async def _post(self, endpoint: Endpoint, requests: Sequence[RpcRequest]) -> list[Any]:
        if self._session is None:
            raise RuntimeError("RpcClient used outside `async with`")
        if self._on_request is not None:
            self._on_request(requests)
        ids = [next(self._ids) for _ in requests]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": r.method, "params": list(r.params)}
            for i, r in zip(ids, requests, strict=True)
        ]
        methods = ",".join(sorted({r.method for r in requests}))
        self.stats.round_trips += 1
        started = time.monotonic()
        try:
            async with self._session.post(endpoint.url, json=payload) as response:
                if response.status in self.retry.retry_http_statuses:
                    # busy, rate-limited or its upstream down: it answered without acting
                    raise NotDelivered(f"{endpoint.label} answered HTTP {response.status}")
                if response.status != 200:
                    raise DataError(f"{endpoint.label} answered HTTP {response.status}")
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            if out_of_descriptors(err):
                raise self._local_fault(endpoint) from None
            if not isinstance(err, aiohttp.ClientError | TimeoutError):
                raise  # another local OSError: as before, the caller sees it as it is
            self._count(requests, "transport_error")
            # The exception text can carry the full URL: only the redacted label goes on.
            if isinstance(err, aiohttp.ClientConnectorError):  # the request never left
                raise NotDelivered(f"{endpoint.label}: cannot connect") from None
            raise TemporaryError(f"{endpoint.label}: {type(err).__name__}") from None
        if self._out_of_descriptors:
            self._out_of_descriptors = False
            log.info("file descriptors are available again: RPC requests go out")
        log.debug("rpc %s x%d in %.3fs", methods, len(requests), time.monotonic() - started)
        return self._decode(endpoint, requests, ids, body)

    def _decode(
        self, endpoint: Endpoint, requests: Sequence[RpcRequest], ids: list[int], body: bytes
    ) -> list[Any]:
        try:
            answer = json.loads(body)
        except ValueError:
            self._count(requests, "malformed")
            raise TemporaryError(f"{endpoint.label} sent a body that is not JSON") from None
        if isinstance(answer, dict):
            answer = [answer]  # some nodes answer a one-element batch with a bare object
        if not isinstance(answer, list) or len(answer) != len(requests):
            self._count(requests, "malformed")
            got = len(answer) if isinstance(answer, list) else type(answer).__name__
            raise TemporaryError(
                f"{endpoint.label} answered {got} results to a batch of {len(requests)}"
            )
        by_id = {item.get("id"): item for item in answer if isinstance(item, dict)}
        results = []
        for request_id, request in zip(ids, requests, strict=True):
            item = by_id.get(request_id)
            if item is None or ("result" not in item and "error" not in item):
                self._count(requests, "malformed")
                raise TemporaryError(f"{endpoint.label} left {request.method} unanswered")
            if "error" in item:
                error = item["error"] if isinstance(item["error"], dict) else {}
                self.stats.count(request.method, "error")
                message = str(error.get("message", item["error"]))
                results.append(
                    RpcError(request.method, error.get("code"), message, error.get("data"))
                )
            else:
                self.stats.count(request.method, "ok")
                results.append(item["result"])
        return results

    def _local_fault(self, endpoint: Endpoint) -> LocalResourceError:
        """Not counted in the stats nor against the endpoint: the request never left this host."""
        if not self._out_of_descriptors:
            self._out_of_descriptors = True
            log.error(
                "out of file descriptors (EMFILE/ENFILE): RPC requests cannot open a connection; "
                "raise LimitNOFILE or find what holds them (logged once until they are back)"
            )
        return LocalResourceError(f"{endpoint.label}: this host is out of file descriptors")

    def _count(self, requests: Sequence[RpcRequest], result: str) -> None:
        for request in requests:
            self.stats.count(request.method, result)
