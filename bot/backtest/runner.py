"""`rebalancer backtest`: the configured strategy next to buy-and-hold and a calendar, the stress
windows, an optional sweep, and a report (JSON, PNG plots, an HTML page)."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bot.backtest import sweep
from bot.backtest.engine import STRESS_WINDOWS, in_stress, progress_bar, simulate
from bot.errors import ConfigError
from bot.prices import PriceTable, price_matrix
from bot.settings import Settings
from bot.types import BPS

SWEEP_WIDTHS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
SWEEP_EVERY = (1, 7, 30, 90)
SWEEP_PARTIALS = (1.0, 0.5)
# seconds to reach a Dask scheduler, then to find a running worker there
CLUSTER_TIMEOUT = 5.0


def parse_period(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    """`--from` and `--to` as dates; a bad date or an empty period is a ConfigError."""
    days: list[date | None] = []
    for flag, text in (("--from", start), ("--to", end)):
        if text is None:
            days.append(None)
            continue
        try:
            days.append(date.fromisoformat(text))
        except ValueError:
            raise ConfigError(f"{flag} {text!r} is not a date: use YYYY-MM-DD") from None
    first, last = days
    if first is not None and last is not None and first > last:
        raise ConfigError(f"--from {first} is after --to {last}: swap them")
    return first, last


def sweep_market(
    settings: Settings, table: PriceTable, start: date | None, end: date | None
) -> tuple[list[date], sweep.Market, list[str]]:
    """The sweep's market: one price column per allocation unit (its first member's)."""
    units = list(settings.portfolio.targets)
    columns = []
    for unit in units:
        members = [m for m in settings.portfolio.buckets.get(unit, [unit]) if m in settings.tokens]
        if not members:
            raise ConfigError(f"portfolio.targets.{unit}: no token to price it in the sweep")
        columns.append(settings.backtest.price_columns.get(members[0], members[0]))
    days, rows = price_matrix(table, columns, start, end)
    prices = np.array(rows)
    eth_column = settings.backtest.price_columns.get(settings.weth_symbol() or "", "ETH")
    eth_days, eth_rows = (
        price_matrix(table, [eth_column], start, end)
        if eth_column in table.columns
        else (days, [[0.0]] * len(days))
    )
    eth_price = float(np.median([r[0] for r in eth_rows])) if eth_days else 0.0
    gas_usd = settings.backtest.gas_per_rebalance * settings.backtest.gas_gwei * 1e-9 * eth_price
    market = sweep.Market(
        prices=prices,
        targets=np.array([settings.portfolio.targets[u] for u in units]),
        depth=np.full(len(units), settings.backtest.pool_depth_usd),
        fee=settings.venues[next(iter(settings.venues))].fee_bps / BPS,
        gas=gas_usd,
        initial_value=settings.backtest.initial_value,
    )
    return days, market, units


def sweep_chunk(market: sweep.Market, configs: list[sweep.SweepConfig]) -> sweep.SweepResult:
    """One chunk of the sweep: the task a local process or a Dask worker runs."""
    return sweep.run(market, configs)


def _run_chunk(args: tuple[sweep.Market, list[sweep.SweepConfig]]) -> sweep.SweepResult:
    return sweep_chunk(*args)


@contextmanager
def dask_client(address: str, timeout: float | None = None) -> Iterator[Any]:
    """A client of the Dask scheduler at `address` with at least one running worker.

    Every way of not getting one is a ConfigError naming the address and the fix, within about
    twice `timeout` seconds: Dask not installed, a malformed address, no scheduler answering,
    a scheduler without workers. `timeout` defaults to CLUSTER_TIMEOUT.
    """
    timeout = CLUSTER_TIMEOUT if timeout is None else timeout
    try:
        from distributed import Client
        from distributed.comm.addressing import resolve_address
    except ImportError:
        raise ConfigError(
            "--cluster needs Dask distributed, which is not installed: pip install -e '.[cluster]'"
        ) from None
    try:
        # checked before a Client exists: a Client built on a malformed address hangs at exit
        resolve_address(address)
    except ValueError as err:
        raise ConfigError(
            f"--cluster {address!r} is not a Dask scheduler address ({err}): use tcp://HOST:PORT"
        ) from None
    except OSError as err:  # the host name does not resolve
        raise ConfigError(
            f"--cluster {address}: cannot resolve the host ({err.strerror or err}): fix the address"
        ) from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)  # type: ignore[no-untyped-call]
    except OSError:  # refused, unreachable, or no answer in time
        raise ConfigError(
            f"--cluster {address}: no Dask scheduler answered within {timeout:g} s: "
            "start one there (`dask scheduler`) or fix the address"
        ) from None
    try:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise ConfigError(
                f"--cluster {address}: the scheduler has no running worker after {timeout:g} s: "
                f"start some (`dask worker {address}`)"
            ) from None
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]


def dask_tasks(client: Any, configs: int, workers: int = 1) -> int:
    """How many tasks the sweep becomes on the cluster: one per worker thread (at least
    `workers`), never more than there are configurations, and at least one."""
    threads = int(sum(client.nthreads().values()))
    return max(min(max(threads, workers), configs), 1)


def sweep_on_dask(
    client: Any, market: sweep.Market, configs: list[sweep.SweepConfig], workers: int = 1
) -> sweep.SweepResult:
    """The sweep as tasks on the cluster behind `client`, however few the configurations."""
    chunks = _chunks(configs, dask_tasks(client, len(configs), workers)) or [configs]
    futures = client.map(sweep_chunk, [market] * len(chunks), chunks, pure=False)
    parts: list[sweep.SweepResult] = client.gather(futures)
    return _concatenate(parts)


def local_processes(workers: int, configs: int) -> int:
    """How many local processes run a sweep of `configs` configurations: 1 (this process)
    unless `workers` > 1 and there are at least two configurations per process."""
    parallel = max(workers, 1)
    return parallel if configs >= 2 * parallel else 1


def run_sweep(
    market: sweep.Market,
    configs: list[sweep.SweepConfig],
    workers: int = 1,
    cluster: str | None = None,
) -> sweep.SweepResult:
    """The vectorized engine, split into chunks of configurations run by local processes
    (`workers` > 1) or by an existing Dask cluster (`cluster`: the scheduler's address; every
    chunk is then a task on the cluster). Each chunk is independent, so the results are
    identical however it is split."""
    if cluster is not None:
        with dask_client(cluster) as client:
            return sweep_on_dask(client, market, configs, workers)
    parallel = local_processes(workers, len(configs))
    if parallel == 1:
        return sweep.run(market, configs)
    jobs = [(market, chunk) for chunk in _chunks(configs, parallel)]
    with ProcessPoolExecutor(max_workers=parallel) as pool:
        parts = list(pool.map(_run_chunk, jobs))
    return _concatenate(parts)


def _chunks(configs: list[sweep.SweepConfig], parts: int) -> list[list[sweep.SweepConfig]]:
    size = -(-len(configs) // parts)
    return [configs[i : i + size] for i in range(0, len(configs), size)]


def _concatenate(parts: list[sweep.SweepResult]) -> sweep.SweepResult:
    return sweep.SweepResult(
        final_value=np.concatenate([p.final_value for p in parts]),
        rebalances=np.concatenate([p.rebalances for p in parts]),
        turnover=np.concatenate([p.turnover for p in parts]),
        fee_cost=np.concatenate([p.fee_cost for p in parts]),
        impact_cost=np.concatenate([p.impact_cost for p in parts]),
        gas_cost=np.concatenate([p.gas_cost for p in parts]),
        values=np.concatenate([p.values for p in parts], axis=1),
        tracking_error=np.concatenate([p.tracking_error for p in parts]),
        events=np.concatenate([p.events for p in parts], axis=1),
    )


def regime_rates(days: list[date], events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rebalancing events per 30 days inside the stress windows and outside, per configuration.
    A regime with no day in the period has no rate: NaN, not 0."""
    stress = np.array([in_stress(d) is not None for d in days], dtype=bool)

    def rate(mask: np.ndarray) -> np.ndarray:
        count = int(mask.sum())
        if count == 0:
            return np.full(events.shape[1], np.nan)
        return np.asarray(events[mask].sum(axis=0) / count * 30, dtype=float)

    return rate(stress), rate(~stress)


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None, so that it is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def event_ratio(
    days: list[date],
    configs: list[sweep.SweepConfig],
    stress_rate: np.ndarray,
    calm_rate: np.ndarray,
) -> dict[str, Any]:
    """Stress-to-calm ratio of rebalancing events across the drift-driven configurations
    (calendars trade on the clock by construction); `median` is None when it is not defined,
    with the reason in `note`."""
    ratios = [
        float(s / c)
        for config, s, c in zip(configs, stress_rate, calm_rate, strict=True)
        if config.trigger != "calendar" and math.isfinite(s) and math.isfinite(c) and c > 0
    ]
    note = None
    if not ratios:
        if not any(in_stress(d) for d in days):
            note = "the period has no day in a stress window"
        elif all(in_stress(d) for d in days):
            note = "the period has no calm day"
        else:
            note = "no drift-driven configuration rebalanced in calm periods"
    return {
        "median": statistics.median(ratios) if ratios else None,
        "quartiles": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))]
        if ratios
        else None,
        "configurations_compared": len(ratios),
        "note": note,
    }


def backtest(
    settings: Settings,
    table: PriceTable,
    start: date | None,
    end: date | None,
    out: Path,
    *,
    with_sweep: bool = False,
    workers: int = 1,
    cluster: str | None = None,
) -> dict[str, Any]:
    """The backtest and its report in `out`. A `cluster` (a Dask scheduler's address) implies
    the sweep and is reached first, so that a bad address fails before the simulations run."""
    if cluster is None:
        return _backtest(settings, table, start, end, out, with_sweep, workers, None, None)
    with dask_client(cluster) as client:
        return _backtest(settings, table, start, end, out, True, workers, cluster, client)


def _backtest(
    settings: Settings,
    table: PriceTable,
    start: date | None,
    end: date | None,
    out: Path,
    with_sweep: bool,
    workers: int,
    cluster: str | None,
    client: Any,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    strategy = simulate(
        settings,
        table,
        start,
        end,
        name=f"{settings.strategy.trigger} (configured)",
        progress=progress_bar("strategy"),
    )
    hold = simulate(
        settings,
        table,
        start,
        end,
        hold=True,
        name="buy and hold",
        progress=progress_bar("buy and hold"),
    )
    calendar_settings = settings.model_copy(
        update={
            "strategy": settings.strategy.model_copy(
                update={
                    "trigger": "calendar",
                    "interval_seconds": settings.backtest.calendar_days * 86_400,
                    "cron": None,
                }
            ),
        }
    )
    calendar = simulate(
        calendar_settings,
        table,
        start,
        end,
        name=f"calendar every {settings.backtest.calendar_days} days",
        progress=progress_bar("calendar"),
    )
    results = [strategy, hold, calendar]
    report: dict[str, Any] = {
        "results": [r.summary() for r in results],
        "stress_windows": {
            name: [s.isoformat(), e.isoformat()] for name, (s, e) in STRESS_WINDOWS.items()
        },
    }
    sweep_data = None
    if with_sweep:
        days, market, units = sweep_market(settings, table, start, end)
        configs = sweep.grid(SWEEP_WIDTHS, SWEEP_EVERY, partials=SWEEP_PARTIALS)
        executor: dict[str, Any]
        if client is not None:
            executor = {
                "kind": "dask",
                "scheduler": cluster,
                "workers": len(client.nthreads()),
                "tasks": dask_tasks(client, len(configs), workers),
            }
            result = sweep_on_dask(client, market, configs, workers)
        else:
            parallel = local_processes(workers, len(configs))
            kind = "local processes" if parallel > 1 else "this process"
            executor = {"kind": kind, "workers": parallel}
            result = run_sweep(market, configs, workers)
        stress_rate, calm_rate = regime_rates(days, result.events)
        rows = []
        for i, config in enumerate(configs):
            rows.append(
                {
                    "trigger": config.trigger,
                    "band": config.band,
                    "width": config.width,
                    "every_days": config.every_days,
                    "partial": config.partial,
                    "final_value": float(result.final_value[i]),
                    "rebalances": int(result.rebalances[i]),
                    "turnover": float(result.turnover[i]),
                    "fees": float(result.fee_cost[i]),
                    "impact": float(result.impact_cost[i]),
                    "gas": float(result.gas_cost[i]),
                    "tracking_error": float(result.tracking_error[i]),
                    "events_per_30d_stress": _number(stress_rate[i]),
                    "events_per_30d_calm": _number(calm_rate[i]),
                }
            )
        report["sweep"] = {
            "units": units,
            "model": "fee + x^2/depth impact + fixed gas per rebalance (bot/backtest/sweep.py)",
            "ran_on": executor,
            "configurations": rows,
            "stress_to_calm_event_ratio": event_ratio(days, configs, stress_rate, calm_rate),
        }
        sweep_data = (configs, result)
    from bot.backtest.report import write_report

    report = json_safe(report)
    write_report(out, settings, results, report, sweep_data)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
