"""The `rebalancer` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import ConfigError, RebalancerError

if TYPE_CHECKING:
    from bot.settings import Settings

EXAMPLES = """\
examples:
  rebalancer chain up                      # the default fixture chain on 127.0.0.1:8545
  rebalancer chain up --mirror --port 8546 # the same at mainnet addresses (chain id 1)
  rebalancer status --config config/local.toml --rpc-url http://127.0.0.1:8545
  rebalancer plan --config config/local.toml --json   # decision, plan, costs; sends nothing
  rebalancer backtest --config config/local.toml --sweep   # history, stress windows, report
  rebalancer demo                          # fixture chain + the bot against it
"""


def _journal_path(args: argparse.Namespace, settings: Settings | None = None) -> Path:
    """--journal if given, else the config's keeper.journal, relative to the config file."""
    if getattr(args, "journal", None):
        return Path(args.journal)
    if getattr(args, "config", None) is None:
        raise ConfigError(
            "which journal? pass --config FILE (its keeper.journal) or --journal FILE"
        )
    if settings is None:
        from bot.settings import load_settings

        settings = load_settings(args.config)
    configured = settings.keeper.journal
    return configured if configured.is_absolute() else Path(args.config).parent / configured


def _existing_journal(args: argparse.Namespace, settings: Settings | None = None) -> Path:
    """A journal to read or amend: it must exist, never an empty one created by mistake."""
    path = _journal_path(args, settings)
    if not path.is_file():
        raise ConfigError(
            f"no journal at {path}: pass the keeper's --config, or --journal with its path"
        )
    return path


def _chain_build(args: argparse.Namespace) -> int:
    from anvil_fixtures.builder import build

    fixture = build(args.scenario, mirror=args.mirror, force=args.force)
    print(f"state:    {fixture.state_path}")
    print(f"manifest: {fixture.manifest_path}")
    return 0


def _chain_up(args: argparse.Namespace) -> int:
    from anvil_fixtures.builder import build

    fixture = build(args.scenario, mirror=args.mirror)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with fixture.start(port=args.port) as anvil:
        print(
            f"fixture chain {fixture.manifest['scenario']!r}{' (mirror)' if args.mirror else ''} "
            f"at block {fixture.manifest['block_number']}, chain id {fixture.chain_id}"
        )
        print(f"rpc url:  {anvil.url}")
        print(f"manifest: {fixture.manifest_path}")
        print(f"keeper:   {fixture.manifest['keeper']['address']} (anvil dev key in the manifest)")
        print("Ctrl-C stops it.", flush=True)
        stop.wait()
    return 0


def _status(args: argparse.Namespace) -> int:
    from bot.settings import load_settings
    from bot.status import read_and_value, render

    settings = load_settings(args.config, rpc_url=args.rpc_url)
    snapshot, valuation = asyncio.run(read_and_value(settings))
    print(render(snapshot, valuation, args.json))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from bot.decide import evaluate
    from bot.plan_report import render
    from bot.settings import load_settings
    from bot.status import read_and_value
    from strategies import StrategyState

    settings = load_settings(args.config, rpc_url=args.rpc_url)
    snapshot, valuation = asyncio.run(read_and_value(settings))
    # A one-off plan has no history: no cooldown, and a calendar counts as due. Deadlines
    # count from the wall clock: the next block is stamped with it, not with the head's time.
    now = max(int(time.time()), snapshot.timestamp)
    evaluation = evaluate(snapshot, valuation, settings, StrategyState(), now)
    print(render(valuation, evaluation, settings, args.json))
    return 0


def _deploy_executor(args: argparse.Namespace) -> int:
    from bot.chain.connect import connected
    from bot.execution.deploy import deploy_executor
    from bot.execution.signer import load_signer
    from bot.journal import Journal
    from bot.settings import load_settings

    settings = load_settings(args.config, rpc_url=args.rpc_url)
    signer = load_signer(settings.signer)
    if signer is None:
        raise ConfigError(
            f"deploy-executor signs a transaction: set {settings.signer.key_env}, or "
            "signer.keystore with its password"
        )

    async def run() -> str:
        journal = Journal(_journal_path(args, settings))
        try:
            journal.hold_exclusively()  # its nonces must not race a running keeper's
            # with execution.private_rpc_url, the deployment goes there only, like trades
            async with connected(settings, signer, journal) as connection:
                assert connection.sender is not None
                return await deploy_executor(connection.sender, settings)
        finally:
            journal.close()

    address = asyncio.run(run())
    print(f"RebalanceExecutor deployed at {address}, owned by {signer.address}")
    print("Use it with, in the config:")
    print(
        f'  [execution]\n  route = "atomic"\n  executor = "{address}"\n  executor_mode = "wallet"'
    )
    print('(vault mode: transfer the portfolio to the executor and set executor_mode = "vault")')
    return 0


def _run(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from bot.execution.signer import load_signer
    from bot.journal import Journal
    from bot.keeper import CycleResult, Keeper, choose_mode, finish_within
    from bot.metrics import Metrics, MetricsServer, raise_fd_limit
    from bot.settings import load_settings

    settings = load_settings(args.config, rpc_url=args.rpc_url)
    signer = load_signer(settings.signer)
    mode = choose_mode(settings, signer, args.mode)
    keeper_settings = settings.keeper
    journal = Journal(_journal_path(args, settings))
    metrics = Metrics()
    # --json: stdout carries one JSON object per cycle and nothing else; the rest goes to stderr
    say = sys.stderr if args.json else sys.stdout

    def report(result: CycleResult) -> None:
        if args.json:
            print(json.dumps({"mode": mode, **asdict(result)}), flush=True)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            # the handler only sets the event; the loop checks it between cycles
            loop.add_signal_handler(signum, stop.set)
        server = MetricsServer(
            metrics,
            keeper_settings.metrics_host,
            args.metrics_port if args.metrics_port is not None else keeper_settings.metrics_port,
            keeper_settings.healthz_max_age_seconds,
            max_connections=keeper_settings.metrics_max_connections,
            read_timeout=keeper_settings.metrics_read_timeout_seconds,
        )
        raise_fd_limit()  # a soft limit of 1024 is common when started by hand
        try:
            await server.start()
        except OSError as err:  # the port is taken, or not ours to bind
            raise ConfigError(
                f"the metrics server cannot listen on {server.host}:{server.port} "
                f"({err.strerror or err}): set keeper.metrics_port or --metrics-port to a free "
                "port (0 picks one)"
            ) from None
        print(
            f"keeper running in {mode} mode; metrics on http://{server.host}:{server.port}/metrics",
            file=say,
            flush=True,
        )
        try:
            async with Keeper(settings, mode, journal, metrics, signer) as keeper:
                task = asyncio.create_task(keeper.run(stop, args.max_cycles, report))
                done = await finish_within(task, stop, keeper_settings.shutdown_timeout_seconds)
        finally:
            await server.stop()
        if done is None:
            print("stopped mid-cycle after keeper.shutdown_timeout_seconds", file=say, flush=True)
            return 1
        print(f"stopped after {done} cycles", file=say, flush=True)
        return 0

    try:
        return asyncio.run(main())
    finally:
        journal.close()


def _history(args: argparse.Namespace) -> int:
    import csv
    import json as json_module

    from bot.journal import Journal

    if args.csv and not Path(args.csv).resolve().parent.is_dir():
        raise ConfigError(f"cannot write {args.csv}: its folder does not exist")
    journal = Journal(_existing_journal(args))
    try:
        rows = journal.rebalances(args.limit)
    finally:
        journal.close()
    if args.csv:
        columns = [
            "id",
            "time",
            "block",
            "mode",
            "status",
            "reason",
            "value_before",
            "value_after",
            "turnover",
            "fee_cost",
            "impact_cost",
            "gas_cost",
            "gas_used",
            "realized_gain",
        ]
        with open(args.csv, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(row.as_dict() for row in rows)
        print(f"wrote {len(rows)} rebalances to {args.csv}")
    elif args.json:
        print(json_module.dumps([row.as_dict() for row in rows], indent=2, default=str))
    else:
        if not rows:
            print("no rebalances recorded yet")
        for row in rows:
            cost = row.fee_cost + row.impact_cost + row.gas_cost
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.time))
            print(
                f"#{row.id} {when} block {row.block} {row.mode:<7} {row.status:<9} "
                f"turnover {row.turnover:,.2f} cost {cost:,.2f}  {row.reason}"
            )
    return 0


def _resume(args: argparse.Namespace) -> int:
    from bot.journal import Journal

    journal = Journal(_existing_journal(args))
    try:
        reason = journal.get_state("halted")
        if reason is None:
            print("the keeper is not halted")
            return 0
        journal.set_state("consecutive_failures", "0")
        journal.clear_state("halted")
        print(f"resumed; it had halted because: {reason}")
    finally:
        journal.close()
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    import json as json_module

    from bot.execution.reconcile import holdings
    from bot.journal import Journal
    from bot.settings import load_settings
    from bot.status import read_and_value

    settings = load_settings(args.config, rpc_url=args.rpc_url)
    journal = Journal(_existing_journal(args, settings))
    try:
        raw = journal.get_state("expected_holdings")
    finally:
        journal.close()
    if raw is None:
        raise ConfigError("the journal has no expected holdings yet: run the keeper first")
    recorded = json_module.loads(raw)
    snapshot, _ = asyncio.run(read_and_value(settings))
    actual = holdings(snapshot)
    actual["ETH"] = snapshot.eth_balance
    expected = {k: int(v) for k, v in recorded["holdings"].items()}
    differences = {
        name: actual.get(name, 0) - expected.get(name, 0)
        for name in sorted(set(actual) | set(expected))
        if actual.get(name, 0) != expected.get(name, 0)
    }
    report = {
        "recorded_at_block": recorded["block"],
        "block": snapshot.block_number,
        "differences": {k: str(v) for k, v in differences.items()},
    }
    if args.json:
        print(json_module.dumps(report, indent=2))
    elif not differences:
        print(
            f"holdings at block {snapshot.block_number} match the journal "
            f"(recorded at block {recorded['block']})"
        )
    else:
        print(f"differences since block {recorded['block']} (chain minus journal, raw units):")
        for name, diff in differences.items():
            note = " (gas the keeper paid, or ETH sent to the wallet)" if name == "ETH" else ""
            print(f"  {name:<24} {diff:+}{note}")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    settings = load_settings(args.file)
    print(
        f"{args.file}: valid ({len(settings.tokens)} tokens, {len(settings.pools)} pools, "
        f"{len(settings.portfolio.targets)} targets, trigger {settings.strategy.trigger})"
    )
    return 0


def _config_schema(args: argparse.Namespace) -> int:
    import json as json_module

    from bot.settings import Settings

    print(json_module.dumps(Settings.model_json_schema(), indent=2))
    return 0


def _backtest(args: argparse.Namespace) -> int:
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


def _demo(args: argparse.Namespace) -> int:
    """The fixture chain, the keeper in dry-run then live, a replayed crash, and a rebalance."""
    from bot.demo import run_demo

    return run_demo(args.journal, args.metrics_port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rebalancer",
        description="Keep a wallet on its target allocation across Uniswap V2 pools.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="-v: what the keeper does; -vv: debug"
    )
    parser.add_argument("--version", action="version", version=f"rebalancer {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    chain = commands.add_parser("chain", help="local fixture chains on anvil")
    chain_commands = chain.add_subparsers(dest="chain_command", required=True, metavar="ACTION")
    for name, handler, help_text in (
        ("up", _chain_up, "start the fixture chain and serve it until interrupted"),
        ("build", _chain_build, "build (or reuse) the fixture state and manifest"),
    ):
        sub = chain_commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--scenario", default="default", help="scenario name or TOML path (default: default)"
        )
        sub.add_argument(
            "--mirror", action="store_true", help="deploy at Ethereum mainnet addresses, chain id 1"
        )
        if name == "up":
            sub.add_argument("--port", type=int, default=8545, help="RPC port (default: 8545)")
        else:
            sub.add_argument("--force", action="store_true", help="rebuild even if up to date")
        sub.set_defaults(handler=handler)

    status = commands.add_parser(
        "status", help="holdings, prices, weights, drift, LP positions and IL"
    )
    _config_args(status)
    status.set_defaults(handler=_status)

    plan = commands.add_parser(
        "plan", help="decide whether to rebalance and show the exact plan; never signs or sends"
    )
    _config_args(plan)
    plan.set_defaults(handler=_plan)

    for name, mode, help_text in (
        ("run", None, "the keeper loop: live with a key, else dry-run"),
        (
            "dry-run",
            "dry-run",
            "the keeper loop, each plan executed on a throw-away fork; sends nothing",
        ),
        ("paper", "paper", "the keeper loop on a virtual portfolio at real prices"),
    ):
        sub = commands.add_parser(name, help=help_text)
        _config_args(sub)
        sub.add_argument("--max-cycles", type=int, help="stop after N cycles")
        sub.add_argument("--journal", help="SQLite journal (default: keeper.journal)")
        sub.add_argument("--metrics-port", type=int, help="0 picks a free port")
        if mode is None:
            sub.add_argument(
                "--mode", choices=["live", "dry-run", "paper"], help="override keeper.mode"
            )
        sub.set_defaults(handler=_run, mode=mode)

    bt = commands.add_parser(
        "backtest",
        help="the strategy on historical prices, with a report",
        description="The configured strategy, buy-and-hold and a calendar rebalance replayed\n"
        "on daily prices, with an optional parameter sweep, written to a report folder.",
        epilog="""\
examples:
  rebalancer backtest --config config/local.toml          # the whole dataset
  rebalancer backtest --config config/local.toml --from 2020-02-01 --to 2020-04-30 \\
      --sweep --workers 4 --out march-2020                 # one stress window, swept
  rebalancer backtest --config config/local.toml --cluster tcp://10.0.0.5:8786
                                                           # the sweep on a Dask cluster
  rebalancer backtest --config config/local.toml --prices my-prices.csv --json > summary.json
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bt.add_argument("--config", required=True, help="settings TOML (see config/)")
    bt.add_argument(
        "--prices",
        help="CSV of date and one column per asset, UTF-8 (default: data/prices_daily.csv)",
    )
    bt.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first date")
    bt.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last date")
    bt.add_argument(
        "--sweep", action="store_true", help="also sweep bands, intervals, band types, partials"
    )
    bt.add_argument("--workers", type=int, default=1, help="local processes for the sweep")
    bt.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the sweep on the Dask scheduler at ADDRESS (tcp://host:8786) and its workers, "
        "which must have this package installed; implies --sweep. An unreachable scheduler is "
        "an error (exit 2), never a silent local run",
    )
    bt.add_argument(
        "--json",
        action="store_true",
        help="print the results, the sweep summary and the report's paths as JSON, nothing else",
    )
    bt.add_argument(
        "--out", default="backtest-report", help="report folder (default: backtest-report)"
    )
    bt.set_defaults(handler=_backtest)

    history = commands.add_parser("history", help="the rebalances in the journal")
    _journal_args(history)
    history.add_argument("--json", action="store_true")
    history.add_argument("--csv", help="write a CSV file")
    history.add_argument("--limit", type=int)
    history.set_defaults(handler=_history)

    reconcile = commands.add_parser(
        "reconcile", help="compare the journal's expected holdings with the chain, item by item"
    )
    _config_args(reconcile)
    reconcile.add_argument("--journal", help="SQLite journal (default: keeper.journal)")
    reconcile.set_defaults(handler=_reconcile)

    resume = commands.add_parser("resume", help="clear a halt of the circuit breaker")
    _journal_args(resume)
    resume.set_defaults(handler=_resume)

    config = commands.add_parser("config", help="check a config file, or print its JSON Schema")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(handler=_config_check)
    schema = config_commands.add_parser("schema", help="print the JSON Schema of the config")
    schema.set_defaults(handler=_config_schema)

    deploy = commands.add_parser(
        "deploy-executor", help="deploy the atomic RebalanceExecutor, owned by the signer"
    )
    deploy.add_argument("--config", required=True, help="settings TOML (see config/)")
    deploy.add_argument("--rpc-url", help="overrides chain.rpc_urls (also REBALANCER_RPC_URL)")
    deploy.add_argument("--journal", help="SQLite journal (default: keeper.journal)")
    deploy.set_defaults(handler=_deploy_executor)

    demo = commands.add_parser(
        "demo", help="fixture chain, keeper dry-run then live, a replayed March 2020 crash"
    )
    demo.add_argument(
        "--journal", default="demo-journal.sqlite", help="where the demo's journal goes"
    )
    demo.add_argument("--metrics-port", type=int, default=0, help="0 picks a free port")
    demo.set_defaults(handler=_demo)
    return parser


def _journal_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--config", help="the keeper's settings TOML: its keeper.journal is used")
    sub.add_argument("--journal", help="SQLite journal (overrides the config's keeper.journal)")


def _config_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--config", required=True, help="settings TOML (see config/)")
    sub.add_argument("--rpc-url", help="overrides chain.rpc_urls (also REBALANCER_RPC_URL)")
    sub.add_argument("--json", action="store_true", help="machine-readable output")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except RebalancerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `rebalancer history --json | head`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("defi-rebalancer")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
