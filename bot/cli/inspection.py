"""`rebalancer status`, `plan` and `reconcile`: read the chain, never sign or send."""

from __future__ import annotations

import argparse
import asyncio
import time

from bot.cli.journal_paths import existing_journal
from bot.errors import ConfigError


def cmd_status(args: argparse.Namespace) -> int:
    from bot.settings import load_settings
    from bot.status import read_and_value, render

    settings = load_settings(args.config, rpc_url=args.rpc_url)
    snapshot, valuation = asyncio.run(read_and_value(settings))
    print(render(snapshot, valuation, args.json))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
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


def cmd_reconcile(args: argparse.Namespace) -> int:
    import json as json_module

    from bot.execution.reconcile import holdings
    from bot.journal import Journal
    from bot.settings import load_settings
    from bot.status import read_and_value

    settings = load_settings(args.config, rpc_url=args.rpc_url)
    journal = Journal(existing_journal(args, settings))
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
