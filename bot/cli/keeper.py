"""`rebalancer run|dry-run|paper`, `deploy-executor`, `history` and `resume`: the keeper and
its journal."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path

from bot.cli.journal_paths import existing_journal, journal_path
from bot.errors import ConfigError


def cmd_deploy_executor(args: argparse.Namespace) -> int:
    from bot.execution.connect import connected
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
        journal = Journal(journal_path(args, settings))
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


def cmd_run(args: argparse.Namespace) -> int:
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
    journal = Journal(journal_path(args, settings))
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


def cmd_history(args: argparse.Namespace) -> int:
    import csv
    import json as json_module

    from bot.journal import Journal

    if args.csv and not Path(args.csv).resolve().parent.is_dir():
        raise ConfigError(f"cannot write {args.csv}: its folder does not exist")
    journal = Journal(existing_journal(args))
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


def cmd_resume(args: argparse.Namespace) -> int:
    from bot.journal import Journal

    journal = Journal(existing_journal(args))
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
