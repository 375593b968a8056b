"""Prometheus metrics and the aiohttp server for /metrics and /healthz (127.0.0.1 by default)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bot.chain.rpc import RpcStats
from bot.portfolio import Valuation


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


class MetricsServer:
    """Serves /metrics and /healthz; /healthz fails when the last success is older than allowed."""

    def __init__(self, metrics: Metrics, host: str, port: int, max_age_seconds: float) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.max_age = max_age_seconds
        self.started = time.time()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0 and site._server is not None:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def _healthz(self, _: web.Request) -> web.Response:
        last = self.metrics.last_success._value.get()
        reference = last or self.started
        age = time.time() - reference
        halted = self.metrics.halted._value.get()
        if halted:
            return web.json_response({"ok": False, "reason": "halted"}, status=503)
        if age > self.max_age:
            return web.json_response(
                {"ok": False, "reason": f"last success {age:.0f}s ago"}, status=503
            )
        return web.json_response({"ok": True, "last_success_age_seconds": round(age, 1)})
