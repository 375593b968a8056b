"""`rebalancer config check|schema`."""

from __future__ import annotations

import argparse


def cmd_config_check(args: argparse.Namespace) -> int:
    from bot.settings import load_settings

    settings = load_settings(args.file)
    print(
        f"{args.file}: valid ({len(settings.tokens)} tokens, {len(settings.pools)} pools, "
        f"{len(settings.portfolio.targets)} targets, trigger {settings.strategy.trigger})"
    )
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    import json as json_module

    from bot.settings import Settings

    print(json_module.dumps(Settings.model_json_schema(), indent=2))
    return 0
