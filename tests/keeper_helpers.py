"""Shared set-up for keeper tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account

from bot.execution.signer import Signer
from bot.journal import Journal
from bot.keeper import Keeper, Mode
from bot.metrics import Metrics
from bot.paths import ROOT
from bot.settings import Settings, load_settings


def keeper_settings(url: str, tmp_path: Path, **strategy: Any) -> Settings:
    base = load_settings(ROOT / "config" / "local.toml", rpc_url=url)
    return base.model_copy(
        update={
            "strategy": base.strategy.model_copy(
                update={"trigger": "threshold", "cooldown_seconds": 0, **strategy}
            ),
            "keeper": base.keeper.model_copy(
                update={"journal": tmp_path / "journal.sqlite", "metrics_port": 0}
            ),
        }
    )


def make_keeper(
    settings: Settings, mode: Mode, journal: Journal, metrics: Metrics, manifest: dict[str, Any]
) -> Keeper:
    signer = Signer(Account.from_key(manifest["keeper"]["private_key"])) if mode == "live" else None
    return Keeper(settings, mode, journal, metrics, signer)
