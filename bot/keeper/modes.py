"""The keeper's modes: which one runs, and the executor that carries plans out in it.

- live (`bot.execution.live`): signs and sends (needs a key);
- dry-run (`bot.execution.fork`, the default without a key): each plan runs on a throw-away anvil
  fork of the target chain at the current block, impersonating the wallet; the target sees nothing;
- paper (`bot.execution.paper`): a virtual portfolio, kept in the journal, valued at the real
  chain's prices and filled at the plan's exact quotes.
"""

from __future__ import annotations

from typing import Literal

from bot.chain.reader import SnapshotReader
from bot.errors import Halt
from bot.execution.fork import ForkExecutor
from bot.execution.live import LiveExecutor
from bot.execution.outcome import Executor
from bot.execution.paper import PaperExecutor
from bot.execution.sender import Sender
from bot.execution.signer import Signer
from bot.journal import Journal
from bot.metrics import Metrics
from bot.settings import Settings

Mode = Literal["live", "dry-run", "paper"]


def choose_mode(settings: Settings, signer: Signer | None, requested: Mode | None) -> Mode:
    mode = requested or settings.keeper.mode
    if mode is None:
        return "live" if signer is not None else "dry-run"
    if mode == "live" and signer is None:
        raise Halt(
            f"live mode signs transactions: set {settings.signer.key_env} or signer.keystore "
            "(or run `rebalancer dry-run`)"
        )
    return mode


def executor_for(
    mode: Mode,
    settings: Settings,
    journal: Journal,
    metrics: Metrics,
    reader: SnapshotReader,
    sender: Sender | None,
) -> Executor:
    """How this keeper carries plans out, chosen once, when it starts."""
    pairs = {pool.key: pool.address for pool in reader.pools}
    if mode == "live":
        assert sender is not None
        return LiveExecutor(settings, journal, metrics, sender, reader, pairs)
    if mode == "dry-run":
        return ForkExecutor(settings, reader.pools, pairs)
    return PaperExecutor(settings, journal)
