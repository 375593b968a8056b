"""Prometheus metrics and the aiohttp server for /metrics and /healthz (127.0.0.1 by default)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import resource
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bot.chain.rpc import RpcStats
from bot.portfolio import Valuation

log = logging.getLogger(__name__)
# aiohttp's server logs through this one (see _NoTracebackForBadRequests)
http_log = logging.getLogger(f"{__name__}.http")


def raise_fd_limit(ceiling: int = 65536) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (at most `ceiling`); the soft limit after.

    systemd's LimitNOFILE= sets both; started by hand, the soft limit is often 1024 while the
    hard one is far higher, and asyncio (epoll) has no use for the lower one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as err:
            log.debug("could not raise the open-files limit to %d: %s", wanted, err)
    return soft


class _NoTracebackForBadRequests(logging.Filter):
    """aiohttp logs a malformed or oversized request, which it answers with a 400, as an error
    with a traceback: whoever reaches the port could fill the log. It is the client's fault, so
    it becomes one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            log.debug("metrics server refused a bad request: %s", type(exc).__name__)
            return False
        return True


class _AcceptFailuresOncePerMinute(logging.Filter):
    """asyncio logs each accept() that fails for want of file descriptors with a traceback, up to
    `backlog` times per wake-up (145 MB in 45 s in issue 12). The connection cap keeps the server
    below the limit; should something else exhaust it, one such record a minute is enough."""

    def __init__(self) -> None:
        super().__init__()
        self._last = -math.inf

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("socket.accept() out of system resource"):
            return True
        now = time.monotonic()
        if now - self._last < 60:
            return False
        self._last = now
        return True


http_log.addFilter(_NoTracebackForBadRequests())
_ACCEPT_FAILURES = _AcceptFailuresOncePerMinute()


class _RpcCollector(Collector):
    """Reads the RPC client's own counters at scrape time."""

    def __init__(self, stats: Callable[[], RpcStats | None]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "rebalancer_rpc_requests",
            "JSON-RPC requests by method and result",
            labels=["method", "result"],
        )
        stats = self._stats()
        if stats is not None:
            for (method, result), count in sorted(stats.requests.items()):
                family.add_metric([method, result], count)
        yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.portfolio_value = Gauge(
            "rebalancer_portfolio_value", "Portfolio value in the numeraire", registry=r
        )
        self.asset_weight = Gauge(
            "rebalancer_asset_weight", "Weight of each allocation unit", ["asset"], registry=r
        )
        self.asset_drift = Gauge(
            "rebalancer_asset_drift",
            "Weight minus target, per allocation unit",
            ["asset"],
            registry=r,
        )
        self.rebalances = Counter(
            "rebalancer_rebalances", "Rebalances by result", ["result"], registry=r
        )
        self.skipped = Counter(
            "rebalancer_rebalances_skipped",
            "Evaluations that did not rebalance, by reason",
            ["reason"],
            registry=r,
        )
        self.cycle_duration = Histogram(
            "rebalancer_cycle_duration_seconds",
            "Duration of a keeper cycle",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.gas_spent = Counter("rebalancer_gas_spent_wei", "Gas paid, in wei", registry=r)
        self.trade_cost = Gauge(
            "rebalancer_trade_cost",
            "Cost of the last rebalance in the numeraire, by kind",
            ["kind"],
            registry=r,
        )
        self.last_success = Gauge(
            "rebalancer_last_success_timestamp_seconds", "When the last cycle succeeded", registry=r
        )
        self.halted = Gauge(
            "rebalancer_halted", "1 while the circuit breaker holds trading", registry=r
        )
        self.impermanent_loss = Gauge(
            "rebalancer_impermanent_loss_ratio",
            "LP value against holding its entry amounts, minus 1",
            ["pool"],
            registry=r,
        )
        self.blind = Gauge(
            "rebalancer_blind",
            "1 while keeper.max_consecutive_skips cycles in a row skipped on data errors",
            registry=r,
        )
        self.data_skips = Gauge(
            "rebalancer_consecutive_data_skips",
            "Cycles in a row skipped because the chain data could not be trusted",
            registry=r,
        )
        self.blind_reason = ""  # the last data error, for /healthz
        self.gas_cap_hits = Counter(
            "rebalancer_gas_cap_hits",
            "Rebalances that waited because gas was above a cap",
            registry=r,
        )
        self._rpc_stats: RpcStats | None = None
        r.register(_RpcCollector(lambda: self._rpc_stats))

    def watch_rpc(self, stats: RpcStats) -> None:
        self._rpc_stats = stats

    def observe(self, view: Valuation) -> None:
        self.portfolio_value.set(view.total_value)
        for unit in view.units:
            self.asset_weight.labels(unit.unit).set(unit.weight)
            self.asset_drift.labels(unit.unit).set(unit.drift_abs)
        for position in view.lp_positions:
            if position.il_vs_hold is not None:
                self.impermanent_loss.labels(position.key).set(position.il_vs_hold)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _BoundedServer(web.Server):
    """aiohttp's low-level server, holding at most `max_connections` connections open.

    When full, the oldest connection is closed to make room: refusing the newest instead would
    let idle clients lock out Prometheus and /healthz until they time out.
    """

    def __init__(self, handler: Any, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.peak_connections = 0  # accepted ones, the not yet connected included
        self._open: dict[web.RequestHandler, None] = {}  # oldest first

    def __call__(self) -> web.RequestHandler:
        handler = super().__call__()  # asyncio asks for one protocol per accepted socket
        self._open[handler] = None
        self.peak_connections = max(self.peak_connections, len(self._open))
        return handler

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        # Trimmed here rather than in __call__: asyncio makes a whole accept batch of protocols
        # before any is connected, and only a connected one can be closed.
        excess = len(self._open) - self.max_connections
        if excess > 0:
            connected = (h for h in self._open if h is not handler and h.transport is not None)
            for oldest in list(itertools.islice(connected, excess)):
                del self._open[oldest]
                oldest.force_close()

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        self._open.pop(handler, None)
        super().connection_lost(handler, exc)

    @property
    def open_connections(self) -> int:
        return len(self._open)


class MetricsServer:
    """Serves /metrics and /healthz; /healthz fails when the last success is older than allowed.

    Bounded, so that whoever reaches the port cannot take the file descriptors the keeper's RPC
    connections need (issue 12): at most `max_connections` open (plus one accept batch of
    `BACKLOG` for an instant), a request must arrive within `read_timeout` seconds of connecting
    or of the last answer, and oversized headers (over aiohttp's 8190-byte line and field limits)
    or any body get a 4xx without a traceback in the log.
    """

    BACKLOG = 32  # the listen() queue, and how many asyncio accepts per wake-up

    def __init__(
        self,
        metrics: Metrics,
        host: str,
        port: int,
        max_age_seconds: float,
        *,
        max_connections: int = 64,
        read_timeout: float = 10.0,
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.max_age = max_age_seconds
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.started = time.time()
        self.server: _BoundedServer | None = None
        self._runner: web.ServerRunner | None = None

    async def start(self) -> None:
        logging.getLogger("asyncio").addFilter(_ACCEPT_FAILURES)
        self.server = _BoundedServer(
            self._handle,
            max_connections=self.max_connections,
            access_log=None,
            logger=http_log,
            # aiohttp arms this timer when a connection opens and again after each answer, and
            # closes the connection if no whole request came in by then: idle clients, and
            # slowloris ones trickling a header byte at a time, cannot hold a descriptor longer.
            keepalive_timeout=self.read_timeout,
            # a body nobody reads is not drained: the connection closes after the 413
            lingering_time=0,
        )
        self._runner = web.ServerRunner(self.server)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=self.BACKLOG)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.body_exists:
            # neither endpoint takes a body; refused before anything reads it
            raise web.HTTPRequestEntityTooLarge(max_size=0, actual_size=request.content_length or 0)
        route = {"/metrics": self._metrics, "/healthz": self._healthz}.get(request.path)
        if route is None:
            raise web.HTTPNotFound()
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        return await route(request)

    async def _metrics(self, _: web.BaseRequest) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def _healthz(self, _: web.BaseRequest) -> web.Response:
        last = self.metrics.last_success._value.get()
        reference = last or self.started
        age = time.time() - reference
        halted = self.metrics.halted._value.get()
        if halted:
            return web.json_response({"ok": False, "reason": "halted"}, status=503)
        if self.metrics.blind._value.get():
            reason = f"blind: {self.metrics.blind_reason}"
            return web.json_response({"ok": False, "reason": reason}, status=503)
        if age > self.max_age:
            return web.json_response(
                {"ok": False, "reason": f"last success {age:.0f}s ago"}, status=503
            )
        return web.json_response({"ok": True, "last_success_age_seconds": round(age, 1)})
