"""keeper.shutdown_timeout_seconds: a stop lets the cycle in flight finish, within the timeout."""

from __future__ import annotations

import asyncio
import time

from bot.keeper import finish_within


async def _cycles(stop: asyncio.Event, cycle_seconds: float) -> int:
    count = 0
    while not stop.is_set():
        await asyncio.sleep(cycle_seconds)  # a cycle is not interrupted by the stop
        count += 1
    return count


async def test_a_cycle_that_ends_within_the_timeout_finishes() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(_cycles(stop, 0.2))
    asyncio.get_running_loop().call_later(0.3, stop.set)  # mid-way through the second cycle
    assert await finish_within(task, stop, grace_seconds=5.0) == 2


async def test_a_cycle_past_the_timeout_is_cancelled_at_the_timeout() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(_cycles(stop, 30.0))
    asyncio.get_running_loop().call_later(0.1, stop.set)
    started = time.monotonic()
    assert await finish_within(task, stop, grace_seconds=0.3) is None
    assert task.cancelled()
    assert 0.35 < time.monotonic() - started < 2.0


async def test_without_a_stop_it_returns_when_the_keeper_does() -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(asyncio.sleep(0.05, result=7))
    assert await finish_within(task, stop, grace_seconds=0.01) == 7
