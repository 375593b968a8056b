"""The `rebalancer` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

from bot.errors import ConfigError, RebalancerError
from bot.paths import ROOT

EXAMPLES = """\
examples:
  rebalancer chain up                      # the default fixture chain on 127.0.0.1:8545
  rebalancer chain up --mirror --port 8546 # the same at mainnet addresses (chain id 1)
  rebalancer status --config config/local.toml --rpc-url http://127.0.0.1:8545
  rebalancer plan --config config/local.toml --json   # decision, plan, costs; sends nothing
  rebalancer demo                          # fixture chain + the bot against it
"""


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
    from bot.chain.rpc import RpcClient
    from bot.execution.deploy import deploy_executor
    from bot.execution.sender import Sender
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
        journal = Journal(args.journal)
        try:
            async with RpcClient(settings.chain.rpc_urls, chain_id=settings.chain.chain_id) as rpc:
                sender = Sender(rpc, signer, journal, settings.execution, settings.chain.chain_id)
                return await deploy_executor(sender, settings)
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


def _demo(args: argparse.Namespace) -> int:
    """The fixture chain on a free port and the bot's view of the fixture wallet."""
    from anvil_fixtures.builder import build
    from bot.settings import load_settings
    from bot.status import read_and_value, render

    fixture = build("default")
    with fixture.start() as anvil:
        print(
            f"fixture chain {fixture.manifest['scenario']!r} on {anvil.url} "
            f"(prices of {fixture.manifest['date']})\n"
        )
        settings = load_settings(ROOT / "config" / "local.toml", rpc_url=anvil.url)
        snapshot, valuation = asyncio.run(read_and_value(settings))
        print(render(snapshot, valuation, False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rebalancer",
        description="Keep a wallet on its target allocation across Uniswap V2 pools.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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

    deploy = commands.add_parser(
        "deploy-executor", help="deploy the atomic RebalanceExecutor, owned by the signer"
    )
    deploy.add_argument("--config", required=True, help="settings TOML (see config/)")
    deploy.add_argument("--rpc-url", help="overrides chain.rpc_urls (also REBALANCER_RPC_URL)")
    deploy.add_argument(
        "--journal", default="rebalancer-journal.sqlite", help="transaction journal"
    )
    deploy.set_defaults(handler=_deploy_executor)

    demo = commands.add_parser("demo", help="start the fixture chain and show the bot's view of it")
    demo.set_defaults(handler=_demo)
    return parser


def _config_args(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--config", required=True, help="settings TOML (see config/)")
    sub.add_argument("--rpc-url", help="overrides chain.rpc_urls (also REBALANCER_RPC_URL)")
    sub.add_argument("--json", action="store_true", help="machine-readable output")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except RebalancerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
