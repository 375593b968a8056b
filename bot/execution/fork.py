"""Dry-run: each plan runs on a throw-away anvil fork of the target chain at the snapshot's block,
impersonating the wallet; the target sees nothing.

The calls are the ones live mode sends, built by the same code (`bot.execution.run`): the plan's
calls, and the approvals `approval_calls` finds missing when it asks the fork for the wallet's
allowances (exact or capped as configured, a USDT-style token reset through zero first).

anvil forks through a loopback forwarder (`bot/chain/fork_proxy.py`): the target's URL, API key
and all, is never on its command line nor in its messages. Whatever goes wrong with the fork
(anvil does not start, the target stops answering mid-way, a timeout) ends the cycle skipped with
a reason naming the target only as scheme://host:port; nothing was simulated, and the next cycle
tries again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from bot.chain.anvil import FORK_FAILURES, AnvilProcess, fork_failure, fork_of
from bot.chain.connect import rpc_client
from bot.chain.reader import SnapshotReader
from bot.errors import Halt, SkipCycle
from bot.execution.calls import Call
from bot.execution.outcome import Expected, Outcome, nothing_unfinished
from bot.execution.reconcile import reconcile
from bot.execution.run import approval_calls, plan_calls
from bot.portfolio import Valuation, value_portfolio
from bot.settings import Settings
from bot.types import Plan, Pool, Snapshot

log = logging.getLogger(__name__)
FORK_GAS = 3_000_000  # each call's gas limit on the fork


class ForkExecutor:
    def __init__(self, settings: Settings, pools: Sequence[Pool], pairs: Mapping[str, str]) -> None:
        self.settings = settings
        self.pools = tuple(pools)
        self.pairs = pairs

    def portfolio(self, snapshot: Snapshot) -> Snapshot:
        return snapshot

    def unchanged(self, snapshot: Snapshot) -> Expected | None:
        return Expected.of(snapshot)

    def settle_unfinished(self) -> AsyncIterator[tuple[int, Outcome]]:
        return nothing_unfinished()

    async def execute(
        self, plan: Plan, snapshot: Snapshot, view: Valuation, rebalance_id: int
    ) -> Outcome:
        """Returns what the rebalance's row records of the simulation: `simulated` when every
        call succeeded, `failed` when one reverted; `not_sent` (and a SkipCycle) when the fork
        failed. The target chain does not change, whatever happened."""
        settings = self.settings
        target = settings.chain.rpc_urls[0]
        unchanged = Expected.of(snapshot)
        fork = fork_of(target, snapshot.block_number, settings.chain.chain_id)
        try:
            async with fork:  # starts without blocking the loop; stops anvil and its forwarder
                gas_used, reverted = await self._run(plan, _Fork(fork))
                fork_settings = settings.model_copy(
                    update={"chain": settings.chain.model_copy(update={"rpc_urls": [fork.url]})}
                )
                async with rpc_client(fork_settings) as rpc:
                    after_snapshot = await SnapshotReader(rpc, fork_settings, self.pools).snapshot()
        except Halt as err:
            return Outcome(expected=unchanged, finished=False, error=err)
        except (SkipCycle, *FORK_FAILURES) as err:
            reason = "dry-run: " + fork_failure(fork, target, err)
            log.warning("%s", reason)
            # the plan ran nowhere: the cycle is skipped, with the reason
            return Outcome(
                row={"status": "not_sent"},
                expected=unchanged,
                finished=False,
                error=SkipCycle(reason),
            )
        after = value_portfolio(after_snapshot, settings)
        report = reconcile(plan, snapshot, after_snapshot, settings, view, gas_used, 0)
        if reverted:
            log.warning("dry-run: %s would revert; nothing was sent anywhere", reverted)
        else:
            log.info(
                "dry-run: the plan would use %d gas and leave weights %s; nothing was sent",
                gas_used,
                {u.unit: round(u.weight, 4) for u in after.units},
            )
        return Outcome(
            result="simulated" if reverted is None else "simulation_failed",
            row={
                "status": "simulated" if reverted is None else "failed",
                "realized": {o.name: str(o.realized) for o in report.outcomes},
                "realized_weights": after.weights,
                "value_after": after.total_value,
                "gas_used": gas_used,
            },
            turnover_share=1.0,
            expected=unchanged,
        )

    async def _run(self, plan: Plan, fork: _Fork) -> tuple[int, str | None]:
        """The plan's calls, approvals first, sent as the wallet: the gas they used, and what
        reverted (None: nothing did; the calls after it are not sent)."""
        wallet = self.settings.wallet.address
        needs, planned = plan_calls(plan, self.settings, self.pairs, wallet)
        approvals = await approval_calls(fork, self.settings, wallet, needs)
        calls: list[Call] = [*approvals, *(call for call, _ in planned)]
        gas_used = 0
        for call in calls:
            tx = {
                "from": wallet,
                "to": call.to,
                "data": "0x" + call.data.hex(),
                "gas": hex(FORK_GAS),
            }
            receipt = await fork.receipt(await fork.call("eth_sendTransaction", tx))
            gas_used += int(receipt["gasUsed"], 16)
            if receipt["status"] != "0x1":
                return gas_used, call.what
        return gas_used, None


class _Fork:
    """The fork's JSON-RPC, off the event loop: the fork may wait on the target for state."""

    def __init__(self, anvil: AnvilProcess) -> None:
        self.anvil = anvil

    async def call(self, method: str, *params: Any) -> Any:
        return await asyncio.to_thread(self.anvil.rpc, method, *params)

    async def receipt(self, tx_hash: str, wait_seconds: float = 30.0) -> dict[str, Any]:
        # A fork fetches state lazily: the receipt can trail the hash by a moment.
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            receipt = await self.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                return dict(receipt)
            await asyncio.sleep(0.05)
        raise SkipCycle(f"the fork did not mine {tx_hash} within {wait_seconds:g}s")
