"""When the keeper cycles: the trigger (a new block, or a timer), and the grace a stop gives the
cycle in flight."""

from __future__ import annotations

import asyncio
import logging

from bot.chain.rpc import RpcClient
from bot.errors import RebalancerError
from bot.settings import KeeperSettings

log = logging.getLogger(__name__)


async def finish_within(
    task: asyncio.Task[int], stop: asyncio.Event, grace_seconds: float
) -> int | None:
    """The keeper's cycle count; once `stop` is set, the cycle in flight gets `grace_seconds`.

    Past that it is cancelled: whatever it signed is in the journal, and the next start settles
    it (crash recovery), so cutting it short never sends twice. None when it was cut short.
    """
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait({task}, timeout=grace_seconds)
        if task.done():
            return task.result()
        log.warning(
            "the cycle in flight did not finish within keeper.shutdown_timeout_seconds "
            "(%gs): stopping it; the next start settles what it sent",
            grace_seconds,
        )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    finally:
        stopping.cancel()


async def next_trigger(
    rpc: RpcClient, keeper: KeeperSettings, stop: asyncio.Event, last_block: int | None
) -> int | None:
    """Until the next cycle is due (`keeper.trigger_on`) or `stop` is set; the head by then."""
    if keeper.trigger_on == "interval":
        with _suppress_timeout():
            await asyncio.wait_for(stop.wait(), keeper.interval_seconds)
        return last_block
    while not stop.is_set():
        try:
            head = int(await rpc.call("eth_blockNumber"), 16)
        except RebalancerError as err:
            log.warning("waiting for a new block: %s", err)
            head = None
        if head is not None and (last_block is None or head > last_block):
            return head
        with _suppress_timeout():
            await asyncio.wait_for(stop.wait(), keeper.poll_seconds)
    return last_block


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        return exc_type is TimeoutError
