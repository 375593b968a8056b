"""Signing, sending and seeing transactions through: the only code that changes the chain.

Invariants, each covered by a test:
- nothing is signed for sending unless eth_estimateGas says it succeeds now;
- every signed transaction is in the journal, raw bytes included, before it is sent;
- the nonce comes from the chain's pending count and our own open transactions, so a failed
  send never consumes one and a nonce used by someone else is noticed;
- a dropped transaction is re-sent as the same signed bytes (so it can execute at most once);
- a stuck one is replaced at the same nonce with both fee fields raised by the configured bump,
  never above the fee cap; whichever of the two is mined wins, the other is marked replaced;
- a receipt counts only after N confirmations with its block hash unchanged (reorg check);
- a private transaction never goes to the public endpoint unless the config allows it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from eth_utils.address import to_checksum_address

from bot.chain.rpc import RpcClient
from bot.errors import (
    NonceTaken,
    NotDelivered,
    NotSent,
    PrivateNotResent,
    RpcError,
    SendRejected,
    SimulationReverted,
    TemporaryError,
)
from bot.execution.calls import Call
from bot.execution.fees import Fees, assert_signable
from bot.execution.pending import Mined, Pending
from bot.execution.signer import Signer
from bot.journal import Journal
from bot.settings import ExecutionSettings
from bot.types import GWEI

log = logging.getLogger(__name__)


class Sender:
    def __init__(
        self,
        rpc: RpcClient,
        signer: Signer,
        journal: Journal,
        settings: ExecutionSettings,
        chain_id: int,
        private_rpc: RpcClient | None = None,
    ) -> None:
        self.rpc = rpc
        self.signer = signer
        self.journal = journal
        self.settings = settings
        self.chain_id = chain_id
        self.private_rpc = private_rpc
        self._lock = asyncio.Lock()  # one sender, one nonce sequence: sends never interleave

    @property
    def address(self) -> str:
        return self.signer.address

    # --- nonces ---------------------------------------------------------------------------------
    async def next_nonce(self) -> int:
        """The chain's pending count, past any of our own transactions still open.

        Re-synced on every call: a nonce consumed by a transaction that is not in our journal
        is reported, and our open transactions at lower nonces that never mined are closed.
        """
        latest = await self.mined_count()
        pending = int(await self.rpc.call("eth_getTransactionCount", self.address, "pending"), 16)
        nonce = max(latest, pending)
        for record in self.journal.open_transactions(self.address):
            if record.nonce < latest:
                receipt = await self.receipt(record.tx_hash)
                if receipt is None and not await self._nonce_mined_by_us(record.nonce):
                    self.journal.set_status(record.tx_hash, "failed")
                    log.warning(
                        "nonce %d of %s was used by a transaction this keeper did not send; "
                        "its own %s (%s) can no longer execute",
                        record.nonce,
                        self.address,
                        record.what,
                        record.tx_hash,
                    )
            else:
                nonce = max(nonce, record.nonce + 1)
        return nonce

    async def mined_count(self) -> int:
        """How many of our transactions are mined: every nonce below it is used."""
        return int(await self.rpc.call("eth_getTransactionCount", self.address, "latest"), 16)

    async def _nonce_mined_by_us(self, nonce: int) -> bool:
        for record in self.journal.by_nonce(self.address, nonce):
            if await self.receipt(record.tx_hash) is not None:
                return True
        return False

    # --- looking transactions up -----------------------------------------------------------------
    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """Its receipt, None until it is mined."""
        receipt = await self.rpc.call("eth_getTransactionReceipt", tx_hash)
        return None if receipt is None else dict(receipt)

    async def in_pool(self, tx_hash: str) -> bool:
        """Whether the node knows the transaction (pending or mined)."""
        return await self.rpc.call("eth_getTransactionByHash", tx_hash) is not None

    async def await_block(self, number: int) -> None:
        """Until the chain's head reaches block `number`."""
        while int(await self.rpc.call("eth_blockNumber"), 16) < number:  # noqa: ASYNC110 (polls the chain)
            await asyncio.sleep(self.settings.poll_seconds)

    # --- sending ----------------------------------------------------------------------------------
    async def simulate(self, call: Call, value: int = 0) -> int:
        """eth_estimateGas of the call as our sender now; raises SimulationReverted."""
        tx = {"from": self.address, "data": "0x" + call.data.hex(), "value": hex(value)}
        if call.to:  # an empty `to` deploys a contract
            tx["to"] = call.to
        try:
            estimate = await self.rpc.call("eth_estimateGas", tx, "latest")
        except RpcError as err:
            raise SimulationReverted(f"{call.what} would revert: {err.rpc_message}") from None
        return int(estimate, 16)

    async def send(
        self, call: Call, fees: Fees, value: int = 0, rebalance_id: int | None = None
    ) -> Pending:
        """Simulate, sign, journal, send. The nonce is only used if the node accepts it."""
        async with self._lock:
            gas = int(await self.simulate(call, value) * self.settings.gas_limit_margin)
            nonce = await self.next_nonce()
            tx = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": nonce,
                "data": "0x" + call.data.hex(),
                "value": value,
                "gas": gas,
                "maxFeePerGas": fees.max_fee,
                "maxPriorityFeePerGas": fees.max_priority_fee,
            }
            if call.to:
                tx["to"] = call.to
            pending = Pending(
                nonce,
                call.what,
                tx,
                fees,
                private=self.private_rpc is not None,
                rebalance_id=rebalance_id,
                covers=call.covers,
            )
            await self._sign_and_send(pending, replaces=None)
            return pending

    async def sign_bundle(
        self, calls: list[tuple[Call, int]], fees: Fees, rebalance_id: int | None = None
    ) -> list[Pending]:
        """Sign calls with consecutive nonces and fixed gas limits, journaled, not broadcast.

        For a relay bundle: later calls depend on earlier ones (an approval, then the swap), so
        they cannot be estimated one by one; the relay simulates the bundle as a whole instead.
        """
        async with self._lock:
            nonce = await self.next_nonce()
            out = []
            for offset, (call, gas) in enumerate(calls):
                tx = {
                    "type": 2,
                    "chainId": self.chain_id,
                    "nonce": nonce + offset,
                    "to": call.to,
                    "data": "0x" + call.data.hex(),
                    "value": 0,
                    "gas": int(gas * self.settings.gas_limit_margin),
                    "maxFeePerGas": fees.max_fee,
                    "maxPriorityFeePerGas": fees.max_priority_fee,
                }
                pending = Pending(
                    nonce + offset,
                    call.what,
                    tx,
                    fees,
                    private=True,
                    rebalance_id=rebalance_id,
                    covers=call.covers,
                )
                self._sign(pending, replaces=None)
                out.append(pending)
            return out

    def _sign(self, pending: Pending, replaces: str | None) -> tuple[str, bytes]:
        """Sign `pending.tx` as its newest version, journaled (raw bytes included) first."""
        assert_signable(pending.tx, self.settings)
        raw, tx_hash = self.signer.sign(pending.tx)
        self.journal.record_signed(
            tx_hash,
            self.address,
            pending.nonce,
            raw,
            pending.what,
            pending.fees.max_fee,
            pending.fees.max_priority_fee,
            pending.private,
            replaces,
            pending.tx,
            pending.rebalance_id,
            pending.covers,
        )
        pending.versions.append((tx_hash, raw))
        return tx_hash, raw

    async def _sign_and_send(self, pending: Pending, replaces: str | None) -> None:
        tx_hash, raw = self._sign(pending, replaces)
        try:
            await self._broadcast(raw, pending.private)
        except RpcError as err:
            pending.versions.pop()
            self.journal.set_status(tx_hash, "failed")
            raise SendRejected(f"the node refused {pending.what}: {err.rpc_message}") from None
        except NotDelivered as err:
            # it never left this host: nothing to watch for, and its nonce is free again
            pending.versions.pop()
            self.journal.set_status(tx_hash, "failed")
            where = "private endpoint" if pending.private and self.private_rpc else "endpoint"
            raise NotSent(
                f"{pending.what} was not sent: no {where} could be reached ({err}); "
                "nothing went out"
            ) from None
        except TemporaryError:
            # It may have gone out: the watcher looks it up by hash and re-sends the same bytes.
            log.warning(
                "sending %s (%s) did not get an answer; will check and re-send",
                pending.what,
                tx_hash,
            )
        head = int(await self.rpc.call("eth_blockNumber"), 16)
        pending.sent_block = head
        self.journal.set_status(tx_hash, "sent", sent_block=head)
        log.info("sent %s nonce %d as %s", pending.what, pending.nonce, tx_hash)

    async def _broadcast(self, raw: bytes, private: bool) -> None:
        if private and self.private_rpc is not None:
            try:
                await self.private_rpc.call("eth_sendRawTransaction", "0x" + raw.hex())
                return
            except TemporaryError:
                # Down, not refused: an RpcError is not a TemporaryError and goes up as it is
                # (the public mempool is no answer to a refusal).
                if not self.settings.private_fallback_to_public:
                    raise
                log.warning("private endpoint failed; sending through the public one as configured")
        elif private and not self.settings.private_fallback_to_public:
            # a bundle's transaction: only the relay may carry it, never the public mempool
            raise PrivateNotResent(
                "a private transaction is not re-sent through the public endpoint"
            )
        await self.rpc.call("eth_sendRawTransaction", "0x" + raw.hex())

    # --- seeing it through ------------------------------------------------------------------------
    async def wait(self, pending: Pending) -> Mined:
        """Until mined with N confirmations; replaces it when stuck, re-sends it when dropped."""
        settings = self.settings
        replaced = rebroadcasts = nonce_gone = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.receipt_timeout_seconds
        while loop.time() < deadline:
            head = int(await self.rpc.call("eth_blockNumber"), 16)
            for tx_hash, _ in reversed(pending.versions):
                receipt = await self.receipt(tx_hash)
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
                latest = await self.mined_count()
                moved_on = latest > pending.nonce and not await self._nonce_mined_by_us(
                    pending.nonce
                )
                # A node can count a nonce before it serves the receipt: only a nonce that stays
                # used with no receipt of ours, poll after poll, was taken by someone else.
                nonce_gone = nonce_gone + 1 if moved_on else 0
                if nonce_gone >= 3 + settings.confirmations:
                    for tx_hash, _ in pending.versions:
                        self.journal.set_status(tx_hash, "failed")
                    raise NonceTaken(
                        f"nonce {pending.nonce} of {self.address} was used by another transaction "
                        f"while {pending.what} was pending; nothing of ours executed at it"
                    )
                tx_hash, raw = pending.versions[-1]
                if latest > pending.nonce:
                    pass  # one of ours is mined but its receipt not yet visible: look again
                elif not await self.in_pool(tx_hash):
                    # dropped from the pool: the same signed bytes again, never a new transaction
                    log.warning(
                        "%s (%s) was dropped; re-sending the same bytes", pending.what, tx_hash
                    )
                    try:
                        await self._broadcast(raw, pending.private)
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
            await self._sign_and_send(pending, replaces=old)
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
                "to": self.address,
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
        await self._sign_and_send(cancel, replaces=pending.tx_hash)
        return cancel
