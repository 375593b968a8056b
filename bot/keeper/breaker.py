"""The circuit breaker: what stops the keeper trading until someone looks, and what says it
cannot see.

A halt is kept in the journal (`halted`) and survives restarts until `rebalancer resume`. The
keeper halts after `keeper.max_consecutive_failures` failed cycles in a row, when a day's loss
reaches `keeper.daily_loss_cap`, and on whatever a cycle raises as a Halt. It is blind after
`keeper.max_consecutive_skips` cycles in a row skipped on data errors: /healthz and
rebalancer_blind say so while it keeps trying.
"""

from __future__ import annotations

import logging
import time

from bot.errors import Halt
from bot.guards import daily_loss
from bot.journal import Journal
from bot.metrics import Metrics
from bot.settings import KeeperSettings
from strategies.base import DAY

log = logging.getLogger(__name__)


class Breaker:
    def __init__(self, journal: Journal, metrics: Metrics, settings: KeeperSettings) -> None:
        self.journal = journal
        self.metrics = metrics
        self.settings = settings
        self.data_skips = 0  # cycles in a row skipped on a data error

    def halted_reason(self) -> str | None:
        return self.journal.get_state("halted")

    def halt(self, reason: str) -> None:
        log.error("halting: %s (run `rebalancer resume` after looking into it)", reason)
        self.journal.set_state("halted", reason)
        self.metrics.halted.set(1)

    def count(self, failed: bool, reason: str | None, data_error: bool) -> None:
        """A cycle ended: failures in a row halt at the limit, data-error skips make it blind."""
        self._count_data_skip(reason if data_error else None)
        if not failed:
            self.journal.set_state("consecutive_failures", "0")
            self.metrics.last_success.set(time.time())
            return
        failures = int(self.journal.get_state("consecutive_failures", "0") or 0) + 1
        self.journal.set_state("consecutive_failures", str(failures))
        if failures >= self.settings.max_consecutive_failures and not self.halted_reason():
            self.halt(f"{failures} consecutive failed cycles; the last: {reason}")

    def _count_data_skip(self, reason: str | None) -> None:
        """Consecutive cycles that could not trust what they read: past the limit the keeper is
        blind, and says so on /healthz and in rebalancer_blind, while it keeps trying."""
        skips = 0 if reason is None else self.data_skips + 1
        self.data_skips = skips
        self.metrics.data_skips.set(skips)
        blind = skips >= self.settings.max_consecutive_skips
        if blind and not self.metrics.blind._value.get():
            log.error("%d cycles in a row skipped on data errors; the last: %s", skips, reason)
        self.metrics.blind.set(1 if blind else 0)
        self.metrics.blind_reason = (
            f"{skips} cycles in a row skipped on data errors; the last: {reason}" if blind else ""
        )

    def check_daily_loss(self, now: int) -> None:
        """Raises Halt when today's loss has reached the cap (before anything is planned)."""
        day = str(now // DAY)
        if self.journal.get_state("loss_day") != day:
            return
        lost = float(self.journal.get_state("loss_today", "0") or 0)
        refused = daily_loss(lost, self.settings.daily_loss_cap)
        if refused:
            raise Halt(refused)

    def add_loss(self, amount: float, now: int) -> None:
        """Charge a rebalance's loss to its day; halts once the day's total reaches the cap."""
        day = str(now // DAY)
        lost = (
            float(self.journal.get_state("loss_today", "0") or 0)
            if self.journal.get_state("loss_day") == day
            else 0.0
        )
        self.journal.set_state("loss_day", day)
        self.journal.set_state("loss_today", str(lost + amount))
        refused = daily_loss(lost + amount, self.settings.daily_loss_cap)
        if refused:
            self.halt(refused)
