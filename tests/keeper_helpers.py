"""Shared set-up for keeper tests: a Keeper in this process, or the CLI in a subprocess as an
operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_account import Account

from bot.execution.signer import Signer
from bot.journal import Journal
from bot.keeper import Keeper, Mode
from bot.metrics import Metrics
from bot.paths import ROOT
from bot.settings import Settings, load_settings
from tests.conftest import Chain

LOCAL_CONFIG = ROOT / "config" / "local.toml"
# A command line and its environment, for subprocess.run/Popen or asyncio.create_subprocess_exec.
Command = tuple[list[str], dict[str, str]]


def keeper_settings(url: str, tmp_path: Path, **strategy: Any) -> Settings:
    base = load_settings(LOCAL_CONFIG, rpc_url=url)
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


def config_file(folder: Path, *, journal: str | None = None, extra: str = "") -> Path:
    """config/local.toml copied to FOLDER/keeper.toml, with keeper.journal set to `journal` (a
    path relative to the config's folder) and `extra` TOML appended."""
    text = LOCAL_CONFIG.read_text()
    if journal is not None:
        text = text.replace('journal = "rebalancer-journal.sqlite"', f'journal = "{journal}"')
        assert f'journal = "{journal}"' in text
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "keeper.toml"
    path.write_text(text + extra)
    return path


def cli_command(
    *args: str, key: str | None = None, settings: Mapping[str, str] | None = None
) -> Command:
    """`rebalancer ARGS` (as `python -m bot.cli`, from any folder) and its environment: this
    process's, less the developer's own REBALANCER_PRIVATE_KEY and REBALANCER_RPC_URL; `key` as
    REBALANCER_PRIVATE_KEY, and each of `settings` as REBALANCER_<NAME>, e.g.
    {"KEEPER__INTERVAL_SECONDS": "0.5"}."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REBALANCER_PRIVATE_KEY", "REBALANCER_RPC_URL")
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update({f"REBALANCER_{name}": value for name, value in (settings or {}).items()})
    if key is not None:
        env["REBALANCER_PRIVATE_KEY"] = key
    return [sys.executable, "-m", "bot.cli", *args], env


def keeper_command(
    chain: Chain,
    journal: Path,
    cycles: int | None,
    *extra: str,
    mode: Mode | None = "live",
    settings: Mapping[str, str] | None = None,
) -> Command:
    """`rebalancer run` with config/local.toml against `chain`: the journal at `journal`, the
    metrics server on a free port, `cycles` cycles (None: until stopped), then `extra` arguments.
    A live keeper signs with the fixture keeper's key; any other mode, or none (the CLI chooses),
    runs without a key."""
    args = ["run"] if mode is None else ["run", "--mode", mode]
    args += ["--config", str(LOCAL_CONFIG), "--rpc-url", chain.url, "--journal", str(journal)]
    args += ["--metrics-port", "0"]
    if cycles is not None:
        args += ["--max-cycles", str(cycles)]
    key = chain.manifest["keeper"]["private_key"] if mode == "live" else None
    return cli_command(*args, *extra, key=key, settings=settings)


def run_command(
    command: Command, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end, its output captured as text; its exit status is the caller's
    to check."""
    argv, env = command
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env, check=False
    )


def run_cli(
    *args: str,
    key: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    settings: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`rebalancer ARGS` to its end (see cli_command, run_command)."""
    return run_command(cli_command(*args, key=key, settings=settings), cwd, timeout)
