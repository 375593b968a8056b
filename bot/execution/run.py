"""Carry a Plan out: approvals, then the atomic executor call or the Router02 calls, one by one,
each simulated just before it is signed, then reconciled against the plan.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector

from bot.errors import TemporaryError
from bot.execution.calls import Call, approve_data, executor_call, router_calls, router_spends
from bot.execution.fees import Fees, check_caps
from bot.execution.pending import Mined
from bot.execution.relay import BundleRelay
from bot.execution.sender import Sender
from bot.settings import Settings
from bot.types import Plan

log = logging.getLogger(__name__)
ALLOWANCE = function_signature_to_4byte_selector("allowance(address,address)")
# An approve transaction's gas, a bound: ~46k from a zero allowance, ~29k from a nonzero one
# (a token that must go through zero sends its reset as an approval of its own), more behind
# a proxy such as USDC's. A bundle signs approvals with this gas limit; the fee caps count it.
APPROVAL_GAS = 80_000
EXECUTE_OVERHEAD_GAS = 60_000
BUNDLE_BLOCKS = 5  # a bundle is offered to the relay for this many blocks, then dropped


@dataclass(frozen=True, slots=True)
class Execution:
    mined: tuple[Mined, ...]
    approvals: int  # approval transactions sent
    gas_used: int
    gas_cost_wei: int


class Rpc(Protocol):
    """What reads a chain: the RpcClient, or the dry-run's fork (`bot.execution.fork`)."""

    async def call(self, method: str, *params: Any) -> Any: ...


async def allowance(rpc: Rpc, token: str, owner: str, spender: str) -> int:
    data = "0x" + (ALLOWANCE + encode(["address", "address"], [owner, spender])).hex()
    return int(await rpc.call("eth_call", {"to": token, "data": data}, "latest"), 16)


async def approval_calls(
    rpc: Rpc, settings: Settings, owner: str, needs: Mapping[tuple[str, str], int]
) -> list[Call]:
    """Approvals for (token, spender) -> amount: skipped when the allowance already suffices,
    exact (or capped by config), and through zero first for USDT-style tokens. Live and dry-run
    both send these, each asking its own chain (the dry-run: its fork) for the allowances."""
    by_address = {t.address: (symbol, t) for symbol, t in settings.tokens.items()}
    calls = []
    for (token, spender), amount in needs.items():
        current = await allowance(rpc, token, owner, spender)
        if current >= amount:
            continue
        symbol, spec = by_address.get(token, (token, None))
        if current > 0 and spec is not None and spec.approve_through_zero:
            calls.append(
                Call(token, approve_data(spender, 0), f"reset {symbol} allowance to 0", "approve")
            )
        target = (
            amount
            if settings.execution.approval == "exact"
            else int(amount * settings.execution.approval_cap)
        )
        calls.append(Call(token, approve_data(spender, target), f"approve {symbol}", "approve"))
    return calls


def plan_calls(
    plan: Plan, settings: Settings, pairs: Mapping[str, str], owner: str
) -> tuple[dict[tuple[str, str], int], list[tuple[Call, int]]]:
    """The allowances the plan needs, (token, spender) -> amount, and its calls with their gas:
    one executor call on the atomic route, one Router02 call per action on the sequential one."""
    execution = settings.execution
    needs: dict[tuple[str, str], int] = {}
    if execution.route == "atomic":
        assert execution.executor is not None
        data, pulls = executor_call(plan, settings, pairs, execution.executor_mode)
        for token, amount in pulls:
            needs[(token, execution.executor)] = amount
        what = f"execute {len(plan.actions)} actions"
        every = tuple(range(len(plan.actions)))  # one transaction, all or nothing
        call = Call(execution.executor, data, what, "execute", covers=every)
        return needs, [(call, plan.gas + EXECUTE_OVERHEAD_GAS)]
    for spend in router_spends(plan, settings, pairs):
        key = (spend.token, spend.spender)
        needs[key] = needs.get(key, 0) + spend.amount
    calls = router_calls(plan, settings, pairs, owner)
    return needs, [(call, action.gas) for call, action in zip(calls, plan.actions, strict=True)]


async def execute_plan(
    plan: Plan,
    settings: Settings,
    sender: Sender,
    fees: Fees,
    eth_price: float,
    pairs: Mapping[str, str],
    rebalance_id: int | None = None,
) -> Execution:
    """Send the plan and wait for every transaction; raises before signing anything that would
    revert, and before sending anything when the fee caps are exceeded."""
    execution = settings.execution
    rpc = sender.rpc
    owner = sender.address
    needs, planned = plan_calls(plan, settings, pairs, owner)
    actions = [call for call, _ in planned]
    approvals = await approval_calls(rpc, settings, owner, needs)
    check_caps(fees, plan.gas + APPROVAL_GAS * len(approvals), eth_price, execution)
    mined: list[Mined] = []
    for call in [*approvals, *actions]:
        pending = await sender.send(call, fees, rebalance_id=rebalance_id)
        result = await sender.wait(pending)
        mined.append(result)
        if result.status != 1:
            log.error("%s reverted on chain in %s; stopping this plan", call.what, result.tx_hash)
            break
    gas = sum(m.gas_used for m in mined)
    cost = sum(m.gas_used * m.effective_gas_price for m in mined)
    return Execution(tuple(mined), len(approvals), gas, cost)


async def execute_plan_as_bundle(
    plan: Plan,
    settings: Settings,
    sender: Sender,
    relay: BundleRelay,
    fees: Fees,
    eth_price: float,
    pairs: Mapping[str, str],
    max_blocks: int = BUNDLE_BLOCKS,
    rebalance_id: int | None = None,
) -> Execution:
    """Send the plan as one relay bundle: all of it in one block, in order, or none of it.

    The relay simulates the bundle first; a revert anywhere sends nothing and frees the nonces.
    """
    execution = settings.execution
    owner = sender.address
    needs, actions = plan_calls(plan, settings, pairs, owner)
    approvals = [
        (call, APPROVAL_GAS) for call in await approval_calls(sender.rpc, settings, owner, needs)
    ]
    bundle = [*approvals, *actions]
    check_caps(fees, sum(gas for _, gas in bundle), eth_price, execution)
    signed = await sender.sign_bundle(bundle, fees, rebalance_id)
    raws = [p.versions[0][1] for p in signed]
    head = int(await sender.rpc.call("eth_blockNumber"), 16)
    try:
        await relay.call_bundle(raws, head + 1)
    except BaseException:
        for pending in signed:
            sender.journal.set_status(pending.tx_hash, "failed")  # never broadcast: nonces free
        raise
    for target in range(head + 1, head + 1 + max_blocks):
        await relay.send_bundle(raws, target)
        for pending in signed:
            sender.journal.set_status(pending.tx_hash, "sent", sent_block=target - 1)
        await sender.await_block(target)
        receipts = [await sender.receipt(p.tx_hash) for p in signed]
        if all(r is not None for r in receipts):
            mined = tuple([await sender.wait(p) for p in signed])
            gas = sum(m.gas_used for m in mined)
            return Execution(
                mined, len(approvals), gas, sum(m.gas_used * m.effective_gas_price for m in mined)
            )
        log.info("bundle not in block %d; offering it for the next", target)
    for pending in signed:
        sender.journal.set_status(pending.tx_hash, "dropped")
    raise TemporaryError(f"the bundle was not included in {max_blocks} blocks; nothing executed")
