"""`rebalancer backtest`: the configured strategy next to buy-and-hold and a calendar, the stress
windows, an optional sweep, and a report (JSON, PNG plots, an HTML page)."""

from __future__ import annotations

import json
import statistics
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from bot.backtest import sweep
from bot.backtest.engine import STRESS_WINDOWS, in_stress, progress_bar, simulate
from bot.errors import ConfigError
from bot.prices import PriceTable, price_matrix
from bot.settings import Settings

SWEEP_WIDTHS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
SWEEP_EVERY = (1, 7, 30, 90)
SWEEP_PARTIALS = (1.0, 0.5)


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
        fee=settings.venues[next(iter(settings.venues))].fee_bps / 10_000,
        gas=gas_usd,
        initial_value=settings.backtest.initial_value,
    )
    return days, market, units


def _run_chunk(args: tuple[sweep.Market, list[sweep.SweepConfig]]) -> sweep.SweepResult:
    market, configs = args
    return sweep.run(market, configs)


def run_sweep(
    market: sweep.Market,
    configs: list[sweep.SweepConfig],
    workers: int = 1,
    cluster: str | None = None,
) -> sweep.SweepResult:
    """The vectorized engine, split into chunks of configurations run by local processes
    (`workers` > 1) or by an existing Dask cluster (`cluster`: the scheduler's address).
    Each chunk is independent, so the results are identical however it is split."""
    parallel = max(workers, 1)
    if cluster is None and (parallel <= 1 or len(configs) < 2 * parallel):
        return sweep.run(market, configs)
    if cluster is not None:
        from distributed import Client  # only needed when a cluster is given

        with Client(cluster) as client:  # type: ignore[no-untyped-call]
            parallel = max(len(client.scheduler_info().get("workers", {})), parallel, 1)
            jobs = [(market, chunk) for chunk in _chunks(configs, parallel)]
            parts = client.gather(client.map(_run_chunk, jobs, pure=False))
    else:
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
    """Rebalancing events per 30 days inside the stress windows and outside, per configuration."""
    stress = np.array([in_stress(d) is not None for d in days])
    stress_days = max(int(stress.sum()), 1)
    calm_days = max(int((~stress).sum()), 1)
    return events[stress].sum(axis=0) / stress_days * 30, events[~stress].sum(
        axis=0
    ) / calm_days * 30


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
        result = run_sweep(market, configs, workers, cluster)
        stress_rate, calm_rate = regime_rates(days, result.events)
        # calendars trade on the clock by construction: the claim concerns drift-driven triggers
        ratios = [
            s / c
            for config, s, c in zip(configs, stress_rate, calm_rate, strict=True)
            if c > 0 and config.trigger != "calendar"
        ]
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
                    "events_per_30d_stress": float(stress_rate[i]),
                    "events_per_30d_calm": float(calm_rate[i]),
                }
            )
        report["sweep"] = {
            "units": units,
            "model": "fee + x^2/depth impact + fixed gas per rebalance (bot/backtest/sweep.py)",
            "configurations": rows,
            "stress_to_calm_event_ratio": {
                "median": statistics.median(ratios) if ratios else None,
                "quartiles": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))]
                if ratios
                else None,
                "configurations_compared": len(ratios),
            },
        }
        sweep_data = (configs, result)
    from bot.backtest.report import write_report

    write_report(out, settings, results, report, sweep_data)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report
