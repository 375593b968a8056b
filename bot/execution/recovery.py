"""Crash recovery: at start, every transaction the journal has as signed or sent is settled.

Each is looked up on chain through the sender (its receipts, its pool look-up, its mined count)
and, unless it can no longer execute, seen through by the sender's own watcher (`Sender.wait`,
bot/execution/watch.py):
- mined: recorded;
- still in the pool: waited for (replaced when stuck, like any of the sender's);
- gone, its nonce unused: the same signed bytes are sent again (never a new transaction, so it
  can execute at most once);
- gone, its nonce used by something else: marked failed;
- signed but never known to have left: marked failed, never sent (it would act on an old plan);
- private (a bundle's), never seen publicly: it lands by its target block or never; waited for
  past that, then settled either way, and never re-sent through the public endpoint.
The next cycle then plans from the chain as it is, so nothing is done twice.
"""

from __future__ import annotations

import logging

from bot.execution.pending import Pending
from bot.execution.run import BUNDLE_BLOCKS
from bot.execution.sender import Sender
from bot.journal import Journal, TxRecord, TxStatus

log = logging.getLogger(__name__)
# A bundle is offered for BUNDLE_BLOCKS blocks from the one after it was sent; past this many,
# its transactions cannot land.
BUNDLE_HORIZON_BLOCKS = BUNDLE_BLOCKS + 1


async def recover(sender: Sender) -> None:
    """Settle every open transaction of the sender's journal (see the module's docstring)."""
    journal = sender.journal
    for record in journal.open_transactions(sender.address):
        receipt = await sender.receipt(record.tx_hash)
        if receipt is None and not await sender.in_pool(record.tx_hash):
            if record.status == "signed":
                _close(journal, record, "failed", "%s (%s) was signed but never sent; dropped")
                continue
            if record.private:
                await sender.await_block((record.sent_block or 0) + BUNDLE_HORIZON_BLOCKS)
                receipt = await sender.receipt(record.tx_hash)
                if receipt is None:
                    _close(journal, record, "dropped", "private %s (%s) never landed; dropped")
                    continue
        if receipt is None and await sender.mined_count() > record.nonce:
            _close(journal, record, "failed", "%s (%s) never mined and its nonce is used")
            continue
        # mined, in the pool, or dropped with its nonce free (the watcher re-sends the same bytes)
        mined = await sender.wait(Pending.of(record))
        log.info(
            "recovery: %s settled in block %d (status %d)",
            record.what,
            mined.block_number,
            mined.status,
        )


def _close(journal: Journal, record: TxRecord, status: TxStatus, how: str) -> None:
    """Give the record its final status, with a warning: `how` formats its name and hash."""
    journal.set_status(record.tx_hash, status)
    log.warning("recovery: " + how, record.what, record.tx_hash)
