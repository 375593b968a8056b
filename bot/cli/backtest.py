"""`rebalancer backtest`: the strategy on historical prices, with a report."""

from __future__ import annotations

import argparse

from bot.errors import ConfigError


def cmd_backtest(args: argparse.Namespace) -> int:
    import json as json_module
    from pathlib import Path

    from bot.backtest.runner import backtest, parse_period
    from bot.paths import prices_csv
    from bot.prices import load_prices
    from bot.settings import load_settings

    start, end = parse_period(args.start, args.end)
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be at least 1")
    settings = load_settings(args.config)
    table = load_prices(Path(args.prices) if args.prices else prices_csv())
    out = Path(args.out)
    report = backtest(
        settings,
        table,
        start,
        end,
        out,
        with_sweep=args.sweep or args.cluster is not None,  # --cluster implies --sweep
        workers=args.workers,
        cluster=args.cluster,
    )
    sweep_report = report.get("sweep")
    if args.json:
        summary: dict[str, object] = {
            "results": report["results"],
            "stress_windows": report["stress_windows"],
            "sweep": None,
            "report": {
                "folder": str(out),
                "html": str(out / "index.html"),
                "json": str(out / "report.json"),
            },
        }
        if sweep_report is not None:
            summary["sweep"] = {
                key: value for key, value in sweep_report.items() if key != "configurations"
            } | {"configurations_run": len(sweep_report["configurations"])}
        print(json_module.dumps(summary, indent=2, allow_nan=False, default=str))
        return 0
    columns = ("final value", "return", "vol", "max dd", "TE", "rebal.", "costs")
    widths = (14, 9, 7, 7, 7, 7, 10)
    print(f"{'':<28} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True)))
    for r in report["results"]:
        costs = sum(r["costs"].values())
        print(
            f"{r['name']:<28} {r['final_value']:>14,.0f} {r['return']:>9.1%} "
            f"{r['volatility']:>7.1%} {r['max_drawdown']:>7.1%} {r['tracking_error']:>7.2%} "
            f"{r['rebalances']:>7} {costs:>10,.0f}"
        )
    if sweep_report is not None:
        ran_on = sweep_report["ran_on"]
        where = (
            f"as {ran_on['tasks']} tasks on the Dask cluster at {ran_on['scheduler']} "
            f"({ran_on['workers']} workers)"
            if ran_on["kind"] == "dask"
            else f"in {ran_on['workers']} local processes"
            if ran_on["kind"] == "local processes"
            else "in this process"
        )
        print(f"sweep: {len(sweep_report['configurations'])} configurations {where}")
        ratio = sweep_report["stress_to_calm_event_ratio"]
        if ratio["median"] is not None:
            print(
                f"sweep: stress windows bring {ratio['median']:.2f}x the rebalancing events "
                "of calm periods (median)"
            )
        else:
            print(f"sweep: stress-to-calm ratio of rebalancing events n/a ({ratio['note']})")
    print(f"report: {out / 'index.html'}")
    return 0
