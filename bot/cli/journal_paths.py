"""Which journal a command reads or amends: --journal, else the config's keeper.journal."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.settings import Settings


def journal_path(args: argparse.Namespace, settings: Settings | None = None) -> Path:
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


def existing_journal(args: argparse.Namespace, settings: Settings | None = None) -> Path:
    """A journal to read or amend: it must exist, never an empty one created by mistake."""
    path = journal_path(args, settings)
    if not path.is_file():
        raise ConfigError(
            f"no journal at {path}: pass the keeper's --config, or --journal with its path"
        )
    return path
