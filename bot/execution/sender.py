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

from bot.chain.rpc import RpcClient
from bot.errors import (
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
from bot.execution.watch import Watcher
from bot.journal import Journal
from bot.settings import ExecutionSettings

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
        self.watcher = Watcher(self)

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
                if receipt is None and not await self.nonce_mined_by_us(record.nonce):
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

    async def nonce_mined_by_us(self, nonce: int) -> bool:
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
            await self.sign_and_send(pending, replaces=None)
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

    async def sign_and_send(self, pending: Pending, replaces: str | None) -> None:
        tx_hash, raw = self._sign(pending, replaces)
        try:
            await self.broadcast(raw, pending.private)
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

    async def broadcast(self, raw: bytes, private: bool) -> None:
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

    # --- seeing it through (bot/execution/watch.py) ----------------------------------------------
    async def wait(self, pending: Pending) -> Mined:
        """Until mined with N confirmations; replaces it when stuck, re-sends it when dropped."""
        return await self.watcher.wait(pending)

    async def cancel(self, pending: Pending) -> Pending:
        """Replace a pending transaction with a 0-value transfer to ourselves at the same nonce."""
        return await self.watcher.cancel(pending)
