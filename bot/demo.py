"""`rebalancer demo` (the README's first command): the bot end to end on the fixture chain.

1. the fixture chain starts (scenario "default": prices of 2020-03-11);
2. the keeper runs a cycle in dry-run: it plans on a throw-away fork and sends nothing;
3. then live, with the fixture wallet's dev key: it rebalances the drift the fixture starts with;
4. the pools replay 2020-03-12 (ETH 194.87 -> 112.35 USD, -42%) through arbitrage trades;
5. the keeper sees the drift cross its bands and rebalances again;
a before/after table, the journal's history and the live metrics are printed along the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import date
from pathlib import Path
from urllib.request import urlopen

from anvil_fixtures.builder import build
from anvil_fixtures.shock import replay
from bot.execution.signer import load_signer
from bot.journal import Journal
from bot.keeper import Keeper, Mode
from bot.metrics import Metrics, MetricsServer
from bot.paths import ROOT
from bot.portfolio import Valuation
from bot.settings import Settings, load_settings
from bot.status import as_table, read_and_value

SHOCK_DAY = date(2020, 3, 12)


def _weights(title: str, before: Valuation, after: Valuation) -> str:
    lines = [title, f"  {'unit':<6} {'target':>8} {'before':>8} {'after':>8}"]
    for unit in before.units:
        lines.append(
            f"  {unit.unit:<6} {unit.target:>8.2%} {unit.weight:>8.2%} "
            f"{after.unit(unit.unit).weight:>8.2%}"
        )
    lines.append(
        f"  value {before.total_value:,.2f} -> {after.total_value:,.2f} {before.numeraire} "
        "(each at the pools' prices of the moment: our own trades move them)"
    )
    return "\n".join(lines)


async def _cycle(settings: Settings, mode: Mode, journal: Journal, metrics: Metrics) -> str:
    signer = load_signer(settings.signer) if mode == "live" else None
    async with Keeper(settings, mode, journal, metrics, signer) as keeper:
        result = await keeper.cycle()
    return f"{result.status}: {result.reason}"


def _fetch(url: str) -> str:
    with contextlib.closing(urlopen(url, timeout=5)) as response:  # noqa: S310 (loopback)
        return str(response.read().decode())


def run_demo(journal_path: str, metrics_port: int) -> int:
    fixture = build("default")
    Path(journal_path).unlink(missing_ok=True)
    for suffix in ("-wal", "-shm"):
        Path(journal_path + suffix).unlink(missing_ok=True)
    with fixture.start() as anvil:
        base = load_settings(ROOT / "config" / "local.toml", rpc_url=anvil.url)
        # The demo moves fast: act on every band breach, no cooldown between rebalances.
        settings = base.model_copy(
            update={
                "strategy": base.strategy.model_copy(
                    update={"trigger": "threshold", "cooldown_seconds": 0}
                ),
            }
        )
        print(
            f"fixture chain {fixture.manifest['scenario']!r} on {anvil.url}, "
            f"prices of {fixture.manifest['date']}\n"
        )
        journal = Journal(journal_path)
        metrics = Metrics()

        async def main() -> None:
            server = MetricsServer(metrics, "127.0.0.1", metrics_port, 3600)
            await server.start()
            try:
                snapshot, before = await read_and_value(settings)
                print(as_table(snapshot, before), "\n")
                print("1) dry-run: the keeper plans and executes on a throw-away fork")
                print("  ", await _cycle(settings, "dry-run", journal, metrics))
                row = journal.rebalances(1)[0]
                print(
                    f"   would use {row.gas_used:,} gas, cost "
                    f"{row.fee_cost + row.impact_cost + row.gas_cost:,.2f} USD; "
                    "the chain is untouched\n"
                )
                journal.set_state("strategy_state", "{}")  # forget the dry-run's rebalance time
                print("2) live, with the fixture wallet's dev key:")
                os.environ.setdefault(
                    settings.signer.key_env, fixture.manifest["keeper"]["private_key"]
                )
                print("  ", await _cycle(settings, "live", journal, metrics))
                _, after = await read_and_value(settings)
                print(_weights("   weights:", before, after), "\n")
                print(f"3) replaying {SHOCK_DAY}: every pool arbitraged to that day's closes")
                prices = await asyncio.to_thread(replay, anvil.url, fixture.manifest, SHOCK_DAY)
                _, shocked = await read_and_value(settings)
                print(
                    f"   ETH {fixture.manifest['tokens']['WETH']['usd_price']:,.2f} -> "
                    f"{prices['WETH']:,.2f} USD"
                )
                breached = [
                    u for u in shocked.units if abs(u.drift_abs) > settings.strategy.width(u.unit)
                ]
                print(
                    "   drift now: "
                    + ", ".join(f"{u.unit} {u.drift_abs:+.2%}" for u in shocked.units)
                )
                print(f"   outside their bands: {', '.join(u.unit for u in breached) or 'none'}\n")
                print("4) the keeper's next cycle:")
                print("  ", await _cycle(settings, "live", journal, metrics))
                print("   (a price that jumps within the TWAP window looks like manipulation: the")
                print("    keeper waits until the TWAP agrees with the new price)")
                window = settings.valuation.twap_window_seconds
                blocks = window // 12 + 10
                await asyncio.to_thread(anvil.rpc, "anvil_mine", hex(blocks), hex(12))
                print(f"\n5) {blocks * 12 // 60} minutes of blocks later, the next cycle:")
                print("  ", await _cycle(settings, "live", journal, metrics))
                _, rebalanced = await read_and_value(settings)
                print(_weights("   after the crash and the rebalance:", shocked, rebalanced), "\n")
                url = f"http://127.0.0.1:{server.port}/metrics"
                text = await asyncio.to_thread(_fetch, url)
                shown = [
                    line
                    for line in text.splitlines()
                    if line.startswith(
                        (
                            "rebalancer_rebalances_total",
                            "rebalancer_portfolio_value",
                            "rebalancer_halted",
                        )
                    )
                ]
                print(f"metrics (served at {url} while the keeper runs):")
                print("\n".join(f"   {line}" for line in shown))
            finally:
                await server.stop()

        try:
            asyncio.run(main())
        finally:
            journal.close()
    print(f"\njournal: {journal_path}   (`rebalancer history --journal {journal_path}`)")
    print("run the keeper yourself: `rebalancer chain up` in one terminal, then")
    print(
        "`REBALANCER_PRIVATE_KEY=<the manifest's dev key> "
        "rebalancer run --config config/local.toml`"
    )
    return 0
