"""When a calendar is due: every N seconds, or at the times of a cron expression (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime

from cronsim import CronSim

from bot.settings import StrategySettings


def is_due(settings: StrategySettings, last_evaluation: int | None, now: int) -> bool:
    if last_evaluation is None:
        return True
    if settings.cron is not None:
        upcoming = next(CronSim(settings.cron, datetime.fromtimestamp(last_evaluation, UTC)))
        return upcoming.timestamp() <= now
    assert settings.interval_seconds is not None  # the settings validator guarantees a schedule
    return now - last_evaluation >= settings.interval_seconds
