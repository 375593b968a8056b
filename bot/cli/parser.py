"""The argument parser of `rebalancer`: its commands, their options, and the examples."""

from __future__ import annotations

import argparse

from bot.cli.backtest import cmd_backtest
from bot.cli.chain import cmd_chain_build, cmd_chain_up
from bot.cli.config import cmd_config_check, cmd_config_schema
from bot.cli.demo import cmd_demo
from bot.cli.inspection import cmd_plan, cmd_reconcile, cmd_status
from bot.cli.keeper import cmd_deploy_executor, cmd_history, cmd_resume, cmd_run

EXAMPLES = """\
examples:
  rebalancer chain up                      # the default fixture chain on 127.0.0.1:8545
  rebalancer chain up --mirror --port 8546 # the same at mainnet addresses (chain id 1)
  rebalancer status --config config/local.toml --rpc-url http://127.0.0.1:8545
  rebalancer plan --config config/local.toml --json   # decision, plan, costs; sends nothing
  rebalancer backtest --config config/local.toml --sweep   # history, stress windows, report
  rebalancer demo                          # fixture chain + the bot against it
"""


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
        ("up", cmd_chain_up, "start the fixture chain and serve it until interrupted"),
        ("build", cmd_chain_build, "build (or reuse) the fixture state and manifest"),
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
    status.set_defaults(handler=cmd_status)

    plan = commands.add_parser(
        "plan", help="decide whether to rebalance and show the exact plan; never signs or sends"
    )
    _config_args(plan)
    plan.set_defaults(handler=cmd_plan)

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
        sub.set_defaults(handler=cmd_run, mode=mode)

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
    bt.set_defaults(handler=cmd_backtest)

    history = commands.add_parser("history", help="the rebalances in the journal")
    _journal_args(history)
    history.add_argument("--json", action="store_true")
    history.add_argument("--csv", help="write a CSV file")
    history.add_argument("--limit", type=int)
    history.set_defaults(handler=cmd_history)

    reconcile = commands.add_parser(
        "reconcile", help="compare the journal's expected holdings with the chain, item by item"
    )
    _config_args(reconcile)
    reconcile.add_argument("--journal", help="SQLite journal (default: keeper.journal)")
    reconcile.set_defaults(handler=cmd_reconcile)

    resume = commands.add_parser("resume", help="clear a halt of the circuit breaker")
    _journal_args(resume)
    resume.set_defaults(handler=cmd_resume)

    config = commands.add_parser("config", help="check a config file, or print its JSON Schema")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate a config file")
    check.add_argument("file")
    check.set_defaults(handler=cmd_config_check)
    schema = config_commands.add_parser("schema", help="print the JSON Schema of the config")
    schema.set_defaults(handler=cmd_config_schema)

    deploy = commands.add_parser(
        "deploy-executor", help="deploy the atomic RebalanceExecutor, owned by the signer"
    )
    deploy.add_argument("--config", required=True, help="settings TOML (see config/)")
    deploy.add_argument("--rpc-url", help="overrides chain.rpc_urls (also REBALANCER_RPC_URL)")
    deploy.add_argument("--journal", help="SQLite journal (default: keeper.journal)")
    deploy.set_defaults(handler=cmd_deploy_executor)

    demo = commands.add_parser(
        "demo", help="fixture chain, keeper dry-run then live, a replayed March 2020 crash"
    )
    demo.add_argument(
        "--journal", default="demo-journal.sqlite", help="where the demo's journal goes"
    )
    demo.add_argument("--metrics-port", type=int, default=0, help="0 picks a free port")
    demo.set_defaults(handler=cmd_demo)
    return parser


def _journal_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--config", help="the keeper's settings TOML: its keeper.journal is used")
    sub.add_argument("--journal", help="SQLite journal (overrides the config's keeper.journal)")


def _config_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--config", required=True, help="settings TOML (see config/)")
    sub.add_argument("--rpc-url", help="overrides chain.rpc_urls (also REBALANCER_RPC_URL)")
    sub.add_argument("--json", action="store_true", help="machine-readable output")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("defi-rebalancer")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"
