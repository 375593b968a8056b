"""`rebalancer demo`."""

from __future__ import annotations

import argparse


def cmd_demo(args: argparse.Namespace) -> int:
    """The fixture chain, the keeper in dry-run then live, a replayed crash, and a rebalance."""
    from bot.demo import run_demo

    return run_demo(args.journal, args.metrics_port)
