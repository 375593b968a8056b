"""Seeing a sent transaction through: confirmations, reorgs, re-sends, replacements, cancels.

The sender's half after `send`: a dropped transaction is re-sent as the same signed bytes, a stuck
one is replaced at the same nonce with both fees raised by the bump (never above the fee cap),
whichever version is mined wins and the others are marked replaced, and a receipt counts only
after N confirmations with its block hash unchanged. See bot/execution/sender.py's invariants.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from eth_utils.address import to_checksum_address

from bot.chain.rpc import RpcClient
from bot.errors import NonceTaken, RpcError, SendRejected, TemporaryError
from bot.execution.pending import Mined, Pending
from bot.journal import Journal
from bot.settings import ExecutionSettings
from bot.types import GWEI

log = logging.getLogger(__name__)


class Sends(Protocol):
    """What the watcher uses of the sender (bot/execution/sender.py's Sender)."""

    rpc: RpcClient
    journal: Journal
    settings: ExecutionSettings

    @property
    def address(self) -> str: ...

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None: ...

    async def in_pool(self, tx_hash: str) -> bool: ...

    async def mined_count(self) -> int: ...

    async def nonce_mined_by_us(self, nonce: int) -> bool: ...

    async def broadcast(self, raw: bytes, private: bool) -> None: ...

    async def sign_and_send(self, pending: Pending, replaces: str | None) -> None: ...


class Watcher:
    """Watches the sender's transactions until final; signs and sends through the sender."""

    def __init__(self, sender: Sends) -> None:
        self.sender = sender

    # the sender's, read through it: one client, one journal, one set of settings
    @property
    def rpc(self) -> RpcClient:
        return self.sender.rpc

    @property
    def journal(self) -> Journal:
        return self.sender.journal

    @property
    def settings(self) -> ExecutionSettings:
        return self.sender.settings

    async def wait(self, pending: Pending) -> Mined:
        """Until mined with N confirmations; replaces it when stuck, re-sends it when dropped."""
        settings = self.settings
        replaced = rebroadcasts = nonce_gone = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.receipt_timeout_seconds
        while loop.time() < deadline:
            head = int(await self.rpc.call("eth_blockNumber"), 16)
            for tx_hash, _ in reversed(pending.versions):
                receipt = await self.sender.receipt(tx_hash)
                if receipt is None or receipt.get("blockNumber") is None:
                    continue
                mined_block = int(receipt["blockNumber"], 16)
                if head - mined_block + 1 < settings.confirmations:
                    break  # mined, not final yet
                block = await self.rpc.call("eth_getBlockByNumber", hex(mined_block), False)
                if block is None or block["hash"] != receipt["blockHash"]:
                    log.warning(
                        "%s: block %d was reorganised; checking again", tx_hash, mined_block
                    )
                    self.journal.set_status(tx_hash, "sent")
                    break
                return self._finish(pending, tx_hash, receipt, replaced, rebroadcasts)
            else:
                # none of the versions is mined
                latest = await self.sender.mined_count()
                moved_on = latest > pending.nonce and not await self.sender.nonce_mined_by_us(
                    pending.nonce
                )
                # A node can count a nonce before it serves the receipt: only a nonce that stays
                # used with no receipt of ours, poll after poll, was taken by someone else.
                nonce_gone = nonce_gone + 1 if moved_on else 0
                if nonce_gone >= 3 + settings.confirmations:
                    for tx_hash, _ in pending.versions:
                        self.journal.set_status(tx_hash, "failed")
                    raise NonceTaken(
                        f"nonce {pending.nonce} of {self.sender.address} was used by another "
                        f"transaction while {pending.what} was pending; nothing of ours executed "
                        "at it"
                    )
                tx_hash, raw = pending.versions[-1]
                if latest > pending.nonce:
                    pass  # one of ours is mined but its receipt not yet visible: look again
                elif not await self.sender.in_pool(tx_hash):
                    # dropped from the pool: the same signed bytes again, never a new transaction
                    log.warning(
                        "%s (%s) was dropped; re-sending the same bytes", pending.what, tx_hash
                    )
                    try:
                        await self.sender.broadcast(raw, pending.private)
                        rebroadcasts += 1
                    except RpcError as err:
                        # e.g. its max fee is now below the base fee: only a replacement can help
                        log.warning("re-sending %s was refused (%s)", pending.what, err.rpc_message)
                        if await self._replace(pending, head):
                            replaced += 1
                    except TemporaryError as err:  # it went out once; try again next poll
                        log.warning("re-sending %s failed (%s); trying again", pending.what, err)
                elif head - pending.sent_block >= settings.stuck_blocks and await self._replace(
                    pending, head
                ):
                    replaced += 1
            await asyncio.sleep(settings.poll_seconds)
        raise TemporaryError(
            f"{pending.what} (nonce {pending.nonce}) not final after "
            f"{settings.receipt_timeout_seconds:g}s; it stays in the journal"
        )

    async def _replace(self, pending: Pending, head: int) -> bool:
        """Same nonce, both fees raised by the bump; refuses to go above the fee cap."""
        bumped = pending.fees.bumped(self.settings.replacement_bump)
        cap = int(self.settings.max_fee_gwei * GWEI)
        if bumped.max_fee > cap:
            log.warning(
                "%s is stuck, but a %.1f%% bump would exceed execution.max_fee_gwei; waiting",
                pending.what,
                self.settings.replacement_bump * 100,
            )
            pending.sent_block = head  # ask again after another stuck period
            return False
        old = pending.tx_hash
        pending.fees = bumped
        pending.tx = {
            **pending.tx,
            "maxFeePerGas": bumped.max_fee,
            "maxPriorityFeePerGas": bumped.max_priority_fee,
        }
        log.info(
            "replacing stuck %s nonce %d: max fee %.2f gwei, tip %.2f gwei",
            pending.what,
            pending.nonce,
            bumped.max_fee / GWEI,
            bumped.max_priority_fee / GWEI,
        )
        try:
            await self.sender.sign_and_send(pending, replaces=old)
        except SendRejected as err:
            # Still too low for the node. The older versions stay the live ones; the next bump
            # starts from the refused fees, after another stuck period.
            log.warning("%s", err)
            pending.sent_block = head
            return False
        return True

    def _finish(
        self,
        pending: Pending,
        tx_hash: str,
        receipt: dict[str, Any],
        replaced: int,
        rebroadcasts: int,
    ) -> Mined:
        for other, _ in pending.versions:
            if other != tx_hash:
                self.journal.set_status(other, "replaced")
        mined = Mined(
            tx_hash=tx_hash,
            nonce=pending.nonce,
            block_number=int(receipt["blockNumber"], 16),
            block_hash=str(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"], 16),
            effective_gas_price=int(receipt.get("effectiveGasPrice") or "0x0", 16),
            status=int(receipt["status"], 16),
            replaced=replaced,
            rebroadcasts=rebroadcasts,
            contract_address=(
                to_checksum_address(receipt["contractAddress"])
                if receipt.get("contractAddress")
                else None
            ),
        )
        self.journal.set_status(
            tx_hash,
            "mined",
            mined_block=mined.block_number,
            block_hash=mined.block_hash,
            gas_used=mined.gas_used,
        )
        return mined

    async def cancel(self, pending: Pending) -> Pending:
        """Replace a pending transaction with a 0-value transfer to ourselves at the same nonce."""
        bumped = pending.fees.bumped(self.settings.replacement_bump)
        cancel = Pending(
            pending.nonce,
            f"cancel {pending.what}",
            {
                **pending.tx,
                "to": self.sender.address,
                "data": "0x",
                "value": 0,
                "gas": 21_000,
                "maxFeePerGas": bumped.max_fee,
                "maxPriorityFeePerGas": bumped.max_priority_fee,
            },
            bumped,
            versions=list(pending.versions),
            private=pending.private,
            rebalance_id=pending.rebalance_id,  # its gas is the rebalance's; it carries out nothing
        )
        await self.sender.sign_and_send(cancel, replaces=pending.tx_hash)
        return cancel
