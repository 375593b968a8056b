"""The backtest report: PNG plots (matplotlib, headless) and an HTML page that shows them."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from bot.backtest import sweep
from bot.backtest.engine import STRESS_WINDOWS, BacktestResult
from bot.settings import Settings


def _days(result: BacktestResult) -> Any:
    return np.array(result.dates, dtype="datetime64[D]")


def _stress_shading(ax: Any) -> None:
    for start, end in STRESS_WINDOWS.values():
        ax.axvspan(np.datetime64(start), np.datetime64(end), color="tab:red", alpha=0.12, lw=0)


def write_report(
    out: Path,
    settings: Settings,
    results: list[BacktestResult],
    report: dict[str, Any],
    sweep_data: tuple[list[sweep.SweepConfig], sweep.SweepResult] | None,
) -> None:
    strategy = results[0]
    x = _days(strategy)
    # weights with their bands and the rebalancing events
    units = list(strategy.weights)
    fig, axes = plt.subplots(len(units), 1, figsize=(11, 2.1 * len(units)), sharex=True)
    for ax, unit in zip(np.atleast_1d(axes), units, strict=True):
        target, band = strategy.targets[unit], strategy.bands[unit]
        if settings.strategy.band == "relative":
            band *= target
        ax.plot(x, strategy.weights[unit], lw=0.9, label=unit)
        ax.axhline(target, color="black", lw=0.6)
        ax.fill_between(
            x,
            target - band,
            target + band,
            color="tab:green",
            alpha=0.12,
        )
        for index in strategy.events:
            ax.axvline(x[index], color="tab:orange", lw=0.3, alpha=0.5)
        _stress_shading(ax)
        ax.set_ylabel(unit)
    np.atleast_1d(axes)[0].set_title(
        f"Weights, target band (green), rebalances (orange), stress windows (red): {strategy.name}"
    )
    fig.tight_layout()
    fig.savefig(out / "weights.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 4))
    for result in results:
        ax.plot(
            _days(result),
            result.values,
            lw=1,
            label=f"{result.name} ({len(result.events)} rebalances)",
        )
    _stress_shading(ax)
    ax.set_yscale("log")
    ax.set_title("Portfolio value (log scale)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "value.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(11, 3.5))
    ax.stackplot(
        x,
        strategy.fee_cost,
        strategy.impact_cost,
        strategy.gas_cost,
        labels=["swap fees", "price impact", "gas"],
        alpha=0.8,
    )
    ax.set_title(f"Cumulative trading costs: {strategy.name}")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "costs.png", dpi=110)
    plt.close(fig)

    images = ["value.png", "weights.png", "costs.png"]
    if sweep_data is not None:
        configs, swept = sweep_data
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for ax, band_type in zip(axes, ("absolute", "relative"), strict=True):
            widths = sorted({c.width for c in configs})
            every = sorted({c.every_days for c in configs})
            grid = np.full((len(widths), len(every)), np.nan)
            for i, config in enumerate(configs):
                if (
                    config.trigger == "hybrid"
                    and config.band == band_type
                    and config.partial == 1.0
                ):
                    cell = (widths.index(config.width), every.index(config.every_days))
                    grid[cell] = swept.final_value[i]
            image = ax.imshow(
                grid / settings.backtest.initial_value,
                aspect="auto",
                cmap="viridis",
                origin="lower",
            )
            ax.set_xticks(range(len(every)), [f"{d}d" for d in every])
            ax.set_yticks(range(len(widths)), [f"{w:g}" for w in widths])
            ax.set_xlabel("evaluated every")
            ax.set_ylabel(f"{band_type} band")
            ax.set_title(f"hybrid, {band_type} bands: final value / initial")
            fig.colorbar(image, ax=ax)
        fig.tight_layout()
        fig.savefig(out / "sweep.png", dpi=110)
        plt.close(fig)
        images.append("sweep.png")

    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r["name"],
                f"{r['final_value']:,.0f}",
                f"{r['return']:.1%}",
                f"{r['volatility']:.1%}",
                f"{r['max_drawdown']:.1%}",
                f"{r['tracking_error']:.2%}",
                r["rebalances"],
                f"{r['turnover']:,.0f}",
                f"{r['costs']['fees']:,.0f}",
                f"{r['costs']['impact']:,.0f}",
                f"{r['costs']['gas']:,.0f}",
            )
        )
        + "</tr>"
        for r in report["results"]
    )
    ratio = report.get("sweep", {}).get("stress_to_calm_event_ratio")
    sweep_line = ""
    if ratio and ratio["median"] is not None:
        sweep_line = (
            "<p>Sweep: rebalancing events per 30 days, stress windows over calm periods, "
            "median across "
            f"{ratio['configurations_compared']} configurations: <b>{ratio['median']:.2f}x</b> "
            f"(quartiles {ratio['quartiles'][0]:.2f}-{ratio['quartiles'][1]:.2f}).</p>"
        )
    elif ratio:
        sweep_line = (
            "<p>Sweep: rebalancing events per 30 days, stress windows over calm periods: "
            f"<b>n/a</b> ({html.escape(str(ratio.get('note') or 'not defined'))}).</p>"
        )
    header = "".join(
        f"<th>{name}</th>"
        for name in (
            "strategy",
            "final value",
            "return",
            "volatility",
            "max drawdown",
            "tracking error",
            "rebalances",
            "turnover",
            "fees",
            "impact",
            "gas",
        )
    )
    pictures = "".join(f'<p><img src="{name}" width="100%"></p>' for name in images)
    style = "body{font-family:sans-serif;max-width:1200px;margin:auto}td,th{padding:2px 8px}"
    page = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Backtest</title>'
        f"<style>{style}</style></head><body><h1>Backtest</h1>"
        f"<table><tr>{header}</tr>{rows}</table>{sweep_line}{pictures}"
        "<p>Data: report.json</p></body></html>"
    )
    (out / "index.html").write_text(page)
