"""The keeper loop: read, value, decide, plan, act, record; under a deadline, behind a circuit
breaker, stoppable by a signal without leaving anything half-done or unrecorded.

Modes:
- live: signs and sends (needs a key);
- dry-run (the default without a key): each plan runs on a throw-away anvil fork of the target
  chain at the current block, impersonating the wallet; the target sees nothing;
- paper: a virtual portfolio, kept in the journal, valued at the real chain's prices and filled
  at the plan's exact quotes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

from bot.chain.anvil import FORK_FAILURES, AnvilProcess, fork_failure, fork_of
from bot.chain.connect import connected, rpc_client
from bot.chain.reader import SnapshotReader
from bot.chain.rpc import RpcClient, out_of_descriptors
from bot.decide import Evaluation, evaluate
from bot.errors import DataError, FeeTooHigh, Halt, RebalancerError, SkipCycle
from bot.execution.calls import approve_data
from bot.execution.fees import Fees, suggest_fees
from bot.execution.reconcile import action_changes, expected_changes, holdings, reconcile
from bot.execution.relay import BundleRelay
from bot.execution.run import execute_plan, execute_plan_as_bundle, plan_calls
from bot.execution.sender import Sender
from bot.execution.settle import (
    Check,
    Settlement,
    Step,
    executed_costs,
    executed_share,
    settle,
    shortfall_value,
    transfer_flows,
)
from bot.execution.signer import Signer
from bot.guards import daily_loss, gas_balance, price_guard
from bot.journal import CycleStatus, Journal, RebalanceUpdate
from bot.lots import apply_trade, opened_unit_cost, seed_lots, swap_units
from bot.metrics import Metrics
from bot.portfolio import Valuation, value_portfolio
from bot.settings import Settings
from bot.types import NATIVE, Action, AddLiquidity, Plan, RemoveLiquidity, Snapshot, Swap
from strategies.base import DAY, PricePoint, StrategyState
from strategies.state import observation, observe

log = logging.getLogger(__name__)
Mode = Literal["live", "dry-run", "paper"]
BUNDLE_HORIZON_BLOCKS = 6  # a bundle is offered for 5 blocks; after that it cannot land


@dataclass(frozen=True, slots=True)
class CycleResult:
    status: str  # rebalanced | skipped | failed | halted
    reason: str | None
    block: int | None
    duration: float
    rebalance_id: int | None = None
    skip: str | None = None  # why it skipped: "dataerror", "inside_band", ...


def choose_mode(settings: Settings, signer: Signer | None, requested: Mode | None) -> Mode:
    mode = requested or settings.keeper.mode
    if mode is None:
        return "live" if signer is not None else "dry-run"
    if mode == "live" and signer is None:
        raise Halt(
            f"live mode signs transactions: set {settings.signer.key_env} or signer.keystore "
            "(or run `rebalancer dry-run`)"
        )
    return mode


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


class Keeper:
    def __init__(
        self,
        settings: Settings,
        mode: Mode,
        journal: Journal,
        metrics: Metrics,
        signer: Signer | None = None,
    ) -> None:
        self.settings = settings
        self.mode = mode
        self.journal = journal
        self.metrics = metrics
        self.signer = signer
        self.rpc: RpcClient | None = None
        self.reader: SnapshotReader | None = None
        self.sender: Sender | None = None
        self.private_rpc: RpcClient | None = None
        self._connection = contextlib.AsyncExitStack()  # closes rpc, private_rpc
        self.pairs: dict[str, str] = {}
        self.cycle_id = 0  # the journal's row for the cycle in progress
        self.data_skips = 0  # cycles in a row skipped on a data error

    async def __aenter__(self) -> Keeper:
        self.journal.hold_exclusively()  # before anything can be sent or recorded
        try:
            return await self._open()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def _open(self) -> Keeper:
        # a sender, and the private endpoint it sends through, only when this keeper sends
        signer = self.signer if self.mode == "live" else None
        connection = await self._connection.enter_async_context(
            connected(self.settings, signer, self.journal)
        )
        self.rpc = connection.rpc
        self.private_rpc = connection.private_rpc
        self.sender = connection.sender
        self.metrics.watch_rpc(connection.rpc.stats)
        self.reader = await SnapshotReader.connect(connection.rpc, self.settings)
        self.pairs = {pool.key: pool.address for pool in self.reader.pools}
        if self.mode == "live":
            assert self.sender is not None
            await self.recover()
            await self._settle_unfinished()
        self.metrics.halted.set(1 if self.halted_reason() else 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._connection.aclose()
        finally:
            self.journal.release()

    async def recover(self) -> None:
        """After a crash: settle every transaction the journal has as signed or sent.

        Each is looked up on chain. Mined: recorded. Still in the pool: waited for. Gone, with
        its nonce unused: the same signed bytes are sent again (never a new transaction, so it
        can execute at most once). Gone, with its nonce used by something else: marked failed.
        The next cycle then plans from the chain as it is, so nothing is done twice.
        """
        assert self.sender is not None
        from bot.execution.sender import Pending

        for record in self.journal.open_transactions(self.sender.address):
            receipt = await self.sender.rpc.call("eth_getTransactionReceipt", record.tx_hash)
            in_pool = await self.sender.rpc.call("eth_getTransactionByHash", record.tx_hash)
            if receipt is None and in_pool is None and record.status == "signed":
                # signed, never known to have left: sending it now would act on an old plan
                self.journal.set_status(record.tx_hash, "failed")
                log.warning(
                    "recovery: %s (%s) was signed but never sent; dropped",
                    record.what,
                    record.tx_hash,
                )
                continue
            if receipt is None and in_pool is None and record.private:
                # A bundle's (or private) transaction the public pool never saw: it lands by its
                # target block or never. Wait past that, then settle it either way.
                await self._await_block((record.sent_block or 0) + BUNDLE_HORIZON_BLOCKS)
                if await self.sender.rpc.call("eth_getTransactionReceipt", record.tx_hash) is None:
                    self.journal.set_status(record.tx_hash, "dropped")
                    log.warning(
                        "recovery: private %s (%s) never landed; dropped",
                        record.what,
                        record.tx_hash,
                    )
                    continue
            if receipt is None:
                latest = int(
                    await self.sender.rpc.call(
                        "eth_getTransactionCount", self.sender.address, "latest"
                    ),
                    16,
                )
                if latest > record.nonce:
                    self.journal.set_status(record.tx_hash, "failed")
                    log.warning(
                        "recovery: %s (%s) never mined and its nonce is used",
                        record.what,
                        record.tx_hash,
                    )
                    continue
                if await self.sender.rpc.call("eth_getTransactionByHash", record.tx_hash) is None:
                    log.warning(
                        "recovery: re-sending %s (%s), the same signed bytes",
                        record.what,
                        record.tx_hash,
                    )
                    await self.sender.rpc.call("eth_sendRawTransaction", "0x" + record.raw.hex())
            pending = Pending(
                record.nonce,
                record.what,
                {},
                _fees_of(record),
                versions=[(record.tx_hash, record.raw)],
                sent_block=record.sent_block or 0,
                private=record.private,
            )
            mined = await self.sender.wait(pending)
            log.info(
                "recovery: %s settled in block %d (status %d)",
                record.what,
                mined.block_number,
                mined.status,
            )

    async def _await_block(self, number: int) -> None:
        assert self.rpc is not None
        while int(await self.rpc.call("eth_blockNumber"), 16) < number:  # noqa: ASYNC110 (polls the chain)
            await asyncio.sleep(self.settings.execution.poll_seconds)

    # --- persistent state ---------------------------------------------------------------------
    def halted_reason(self) -> str | None:
        return self.journal.get_state("halted")

    def halt(self, reason: str) -> None:
        log.error("halting: %s (run `rebalancer resume` after looking into it)", reason)
        self.journal.set_state("halted", reason)
        self.metrics.halted.set(1)

    def strategy_state(self) -> StrategyState:
        raw = self.journal.get_state("strategy_state")
        if raw is None:
            return StrategyState()
        data = json.loads(raw)
        history = tuple(
            PricePoint(p[0], tuple((k, v) for k, v in p[1])) for p in data.pop("history", [])
        )
        return StrategyState(**data, history=history)

    def save_strategy_state(self, state: StrategyState) -> None:
        data = asdict(state)  # the history is already sized in time (strategies.state.observe)
        data["history"] = [[p.timestamp, list(p.prices)] for p in state.history]
        self.journal.set_state("strategy_state", json.dumps(data))

    # --- the loop -----------------------------------------------------------------------------
    async def run(
        self,
        stop: asyncio.Event,
        max_cycles: int | None = None,
        on_cycle: Callable[[CycleResult], None] | None = None,
    ) -> int:
        """Cycles until `stop` is set or `max_cycles` ran; returns how many ran."""
        assert self.rpc is not None
        cycles = 0
        last_block: int | None = None
        while not stop.is_set() and (max_cycles is None or cycles < max_cycles):
            if cycles:
                last_block = await self._wait_for_trigger(stop, last_block)
                if stop.is_set():
                    break
            result = await self.cycle()
            if on_cycle is not None:
                on_cycle(result)
            last_block = result.block if result.block is not None else last_block
            cycles += 1
        return cycles

    async def _wait_for_trigger(self, stop: asyncio.Event, last_block: int | None) -> int | None:
        keeper = self.settings.keeper
        assert self.rpc is not None
        if keeper.trigger_on == "interval":
            with _suppress_timeout():
                await asyncio.wait_for(stop.wait(), keeper.interval_seconds)
            return last_block
        while not stop.is_set():
            try:
                head = int(await self.rpc.call("eth_blockNumber"), 16)
            except RebalancerError as err:
                log.warning("waiting for a new block: %s", err)
                head = None
            if head is not None and (last_block is None or head > last_block):
                return head
            with _suppress_timeout():
                await asyncio.wait_for(stop.wait(), keeper.poll_seconds)
        return last_block

    async def cycle(self) -> CycleResult:
        started = time.monotonic()
        self.cycle_id = self.journal.start_cycle(self.mode)
        halted = self.halted_reason()
        if halted:
            self.metrics.halted.set(1)
            self.journal.record_cycle(self.cycle_id, "halted", halted, None, None, None, 0.0)
            return CycleResult("halted", halted, None, 0.0)
        try:
            async with asyncio.timeout(self.settings.keeper.cycle_deadline_seconds):
                result = await self._cycle(started)
        except DataError as err:
            result = self._finish(started, "skipped", str(err), None, "dataerror")
            self._count_data_skip(str(err))
        except SkipCycle as err:
            result = self._finish(started, "skipped", str(err), None, type(err).__name__.lower())
        except Halt as err:
            self.halt(str(err))
            result = self._finish(started, "failed", str(err), None, None)
        except (RebalancerError, TimeoutError, OSError) as err:
            if out_of_descriptors(err):
                # This host is out of file descriptors: no endpoint's fault and no reason to halt.
                # Skipped, with the failure count and the last success left as they were.
                log.warning("cycle skipped: out of file descriptors (%s)", err)
                result = self._finish(started, "skipped", str(err), None, "out_of_descriptors")
                self.metrics.cycle_duration.observe(result.duration)
                return result
            result = self._finish(started, "failed", f"{type(err).__name__}: {err}", None, None)
        if result.skip != "dataerror":
            self._count_data_skip(None)
        if result.status == "failed":
            failures = int(self.journal.get_state("consecutive_failures", "0") or 0) + 1
            self.journal.set_state("consecutive_failures", str(failures))
            if (
                failures >= self.settings.keeper.max_consecutive_failures
                and not self.halted_reason()
            ):
                self.halt(f"{failures} consecutive failed cycles; the last: {result.reason}")
        else:
            self.journal.set_state("consecutive_failures", "0")
            self.metrics.last_success.set(time.time())
        self.metrics.cycle_duration.observe(result.duration)
        return result

    def _count_data_skip(self, reason: str | None) -> None:
        """Consecutive cycles that could not trust what they read: past the limit the keeper is
        blind, and says so on /healthz and in rebalancer_blind, while it keeps trying."""
        skips = 0 if reason is None else self.data_skips + 1
        self.data_skips = skips
        self.metrics.data_skips.set(skips)
        blind = skips >= self.settings.keeper.max_consecutive_skips
        if blind and not self.metrics.blind._value.get():
            log.error("%d cycles in a row skipped on data errors; the last: %s", skips, reason)
        self.metrics.blind.set(1 if blind else 0)
        self.metrics.blind_reason = (
            f"{skips} cycles in a row skipped on data errors; the last: {reason}" if blind else ""
        )

    def _finish(
        self,
        started: float,
        status: CycleStatus,
        reason: str | None,
        view: Valuation | None,
        skip: str | None,
        rebalance_id: int | None = None,
    ) -> CycleResult:
        duration = time.monotonic() - started
        weights = view.weights if view else None
        block = view.block_number if view else None
        value = view.total_value if view else None
        self.journal.record_cycle(self.cycle_id, status, reason, block, value, weights, duration)
        if skip:
            self.metrics.skipped.labels(skip).inc()
        if status == "failed":
            log.warning("cycle failed: %s", reason)
        return CycleResult(status, reason, block, duration, rebalance_id, skip)

    async def _cycle(self, started: float) -> CycleResult:
        assert self.reader is not None
        if self.mode == "live":
            await self._settle_unfinished()  # a rebalance an error left in flight, once final
        snapshot = await self.reader.snapshot()
        if self.mode == "paper":
            snapshot = self._paper_snapshot(snapshot)
        view = value_portfolio(snapshot, self.settings)
        self.metrics.observe(view)
        self._bootstrap_lots(view)
        now = max(int(time.time()), snapshot.timestamp)
        state = observe(self.strategy_state(), self.settings.strategy, observation(view, now))
        evaluation = evaluate(snapshot, view, self.settings, state, now)
        if evaluation.decision.evaluated:
            state = replace(state, last_evaluation=now)
        if not evaluation.rebalance:
            self.save_strategy_state(state)
            self._remember_holdings(snapshot)
            reason = evaluation.gate.reason if evaluation.gate else evaluation.decision.reason
            return self._finish(started, "skipped", reason, view, evaluation.skip_reason)
        plan = evaluation.plan
        assert plan is not None
        self._price_guard(plan, view)
        self._check_daily_loss(now)
        self.save_strategy_state(state)  # acting charges turnover and cooldown on top of it
        rebalance_id = await self._act(snapshot, view, evaluation, plan)
        return self._finish(
            started, "rebalanced", evaluation.decision.reason, view, None, rebalance_id
        )

    def _price_guard(self, plan: Plan, view: Valuation) -> None:
        refused = price_guard(plan, view)
        if refused:
            raise SkipCycle(refused)

    def _check_daily_loss(self, now: int) -> None:
        day = str(now // DAY)
        if self.journal.get_state("loss_day") != day:
            return
        lost = float(self.journal.get_state("loss_today", "0") or 0)
        refused = daily_loss(lost, self.settings.keeper.daily_loss_cap)
        if refused:
            raise Halt(refused)

    def _charge_turnover(self, turnover: float, now: int) -> None:
        """The cooldown and the daily turnover cap count what took effect, however it ended."""
        state = self.strategy_state()
        day = now // DAY
        self.save_strategy_state(
            replace(
                state,
                last_rebalance=max(now, state.last_rebalance or 0),
                turnover_day=day,
                turnover_today=state.turnover_on(day) + turnover,
            )
        )

    def _add_loss(self, amount: float, now: int) -> None:
        day = str(now // DAY)
        lost = (
            float(self.journal.get_state("loss_today", "0") or 0)
            if self.journal.get_state("loss_day") == day
            else 0.0
        )
        self.journal.set_state("loss_day", day)
        self.journal.set_state("loss_today", str(lost + amount))
        if lost + amount >= self.settings.keeper.daily_loss_cap:
            self.halt(
                f"today's trading costs and shortfalls reached {lost + amount:,.2f}, "
                f"the daily loss cap {self.settings.keeper.daily_loss_cap:,.2f}"
            )

    # --- acting -------------------------------------------------------------------------------
    async def _act(
        self, snapshot: Snapshot, view: Valuation, evaluation: Evaluation, plan: Plan
    ) -> int:
        decision = evaluation.decision
        turnover = math.fsum(v for v in decision.deltas.values() if v > 0)
        # Written before anything is sent: a crash leaves a record that says what was attempted.
        quoted = {k: str(v) for k, v in expected_changes(plan).items()}
        rebalance_id = self.journal.record_rebalance(
            cycle_id=self.cycle_id,
            time=time.time(),
            block=snapshot.block_number,
            mode=self.mode,
            status="started",
            reason=decision.reason,
            pre_weights=view.weights,
            post_weights=dict(plan.post_weights),
            trades=[_action_json(a) for a in plan.actions],
            quoted=quoted,
            value_before=view.total_value,
            turnover=turnover,
            fee_cost=plan.fee_cost,
            impact_cost=plan.impact_cost,
            gas_cost=plan.gas_cost,
            prices={name: price.spot for name, price in view.prices.items()},
        )
        now = int(time.time())
        if self.mode == "paper":
            self._paper_fill(plan)
            after = value_portfolio(self._paper_snapshot(snapshot), self.settings)
            gain = self._update_lots(plan.actions, rebalance_id)
            self.journal.update_rebalance(
                rebalance_id,
                status="paper",
                realized=quoted,
                realized_weights=after.weights,
                value_after=after.total_value,
                realized_gain=gain,
            )
            self.metrics.rebalances.labels("paper").inc()
            self._record_costs(plan)
            self.journal.update_rebalance(rebalance_id, loss=plan.total_cost)
            self._add_loss(plan.total_cost, now)
            self._charge_turnover(turnover, now)
            return rebalance_id
        if self.mode == "dry-run":
            self._remember_holdings(snapshot)  # the target chain does not change
            try:
                ok, outcome = await self._simulate_on_fork(snapshot, view, plan)
            except SkipCycle:
                # the fork failed: the plan ran nowhere; the cycle is skipped, with the reason
                self.journal.update_rebalance(rebalance_id, status="not_sent")
                raise
            self.journal.update_rebalance(rebalance_id, **outcome)
            self.metrics.rebalances.labels("simulated" if ok else "simulation_failed").inc()
            self._record_costs(plan)
            self._charge_turnover(turnover, now)
            return rebalance_id
        return await self._live(snapshot, view, plan, rebalance_id, now)

    async def _live(
        self, snapshot: Snapshot, view: Valuation, plan: Plan, rebalance_id: int, now: int
    ) -> int:
        assert self.sender is not None
        assert self.reader is not None
        execution = self.settings.execution
        try:
            fees = await suggest_fees(self.sender.rpc, execution)
            eth_price = view.prices[NATIVE].spot if NATIVE in view.prices else 0.0
            refused = gas_balance(plan, fees.max_fee, snapshot, self.reader.vault, self.settings)
            if refused:
                # no retry storm: every cycle would fail the same way until someone tops it up
                raise Halt(refused)
            if execution.relay_url:
                await execute_plan_as_bundle(
                    plan,
                    self.settings,
                    self.sender,
                    BundleRelay(execution.relay_url),
                    fees,
                    eth_price,
                    self.pairs,
                    rebalance_id=rebalance_id,
                )
            else:
                await execute_plan(
                    plan,
                    self.settings,
                    self.sender,
                    fees,
                    eth_price,
                    self.pairs,
                    rebalance_id=rebalance_id,
                )
        except FeeTooHigh:
            self.metrics.gas_cap_hits.inc()
            await self._settle(rebalance_id, plan.actions, snapshot)
            raise
        except (RebalancerError, TimeoutError, OSError) as err:
            # cut short: what was mined is recorded and charged, then the cycle ends as it would
            settlement = await self._settle(rebalance_id, plan.actions, snapshot)
            if settlement is not None and settlement.status == "shortfall":
                raise self._shortfall(rebalance_id, settlement) from err
            raise
        settlement = await self._settle(rebalance_id, plan.actions, snapshot)
        self._record_costs(plan)
        if settlement is None:
            raise SkipCycle(
                f"rebalance #{rebalance_id}: a transaction is still in flight; it is settled "
                "when it is final"
            )
        if settlement.status == "shortfall":
            raise self._shortfall(rebalance_id, settlement)
        if settlement.status != "executed":
            raise SkipCycle(
                f"rebalance #{rebalance_id} ended {settlement.status}: a transaction of the plan "
                "reverted on chain; `rebalancer history` has the details"
            )
        return rebalance_id

    async def _settle(
        self, rebalance_id: int, actions: Sequence[Action], before: Snapshot | None
    ) -> Settlement | None:
        """Record and charge what the rebalance's mined transactions did; None while one of them
        is still in flight (the next cycle, or the next start, settles it)."""
        assert self.sender is not None
        assert self.reader is not None
        rpc = self.sender.rpc
        names = {t.address.lower(): symbol for symbol, t in self.settings.tokens.items()}
        names.update({address.lower(): key for key, address in self.pairs.items()})
        steps = []
        for record in self.journal.transactions_of(rebalance_id):
            # every record is looked up, whatever the journal thinks of it: the chain decides
            receipt = await rpc.call("eth_getTransactionReceipt", record.tx_hash)
            if receipt is None or receipt.get("blockNumber") is None:
                if record.status == "sent":
                    return None  # in flight: settled once it is final
                continue  # never left, replaced, dropped, cancelled: it did nothing
            gas_used = int(receipt["gasUsed"], 16)
            price = int(receipt.get("effectiveGasPrice") or "0x0", 16)
            steps.append(
                Step(
                    record.tx_hash,
                    record.covers,
                    int(receipt["status"], 16),
                    gas_used,
                    gas_used * price,
                    transfer_flows(receipt.get("logs") or [], str(self.reader.wallet), names),
                )
            )
        settlement = settle(actions, steps)
        row = self.journal.rebalance(rebalance_id)
        prices = row.prices or {}
        decimals = {symbol: t.decimals for symbol, t in self.settings.tokens.items()}
        gas_value = settlement.gas_paid_wei / 1e18 * prices.get(NATIVE, 0.0)
        loss = (
            executed_costs(actions, settlement.executed)
            + shortfall_value(settlement.checks, prices, decimals)
            + gas_value
        )
        executed = [actions[i] for i in settlement.executed]
        gain = self._update_lots(executed, rebalance_id)
        outcome: RebalanceUpdate = {
            "status": settlement.status,
            "checks": [_check_json(c) for c in settlement.checks],
            "loss": loss,
            "gas_used": settlement.gas_used,
            "gas_cost_wei": str(settlement.gas_paid_wei),
            "realized_gain": gain,
            "tx_hashes": [s.tx_hash for s in steps],
        }
        if before is not None and steps:
            try:
                after = await self.reader.snapshot()
            except RebalancerError as err:  # the record stands on the receipts alone
                log.warning("rebalance #%d: reading the chain after: %s", rebalance_id, err)
            else:
                outcome.update(
                    self._after_fields(rebalance_id, before, after, executed, settlement)
                )
        self.journal.update_rebalance(rebalance_id, **outcome)
        self.metrics.gas_spent.inc(settlement.gas_paid_wei)
        self.metrics.rebalances.labels(settlement.status).inc()
        now = int(row.time)
        self._add_loss(loss, max(now, int(time.time())))
        if settlement.executed:
            self._charge_turnover(row.turnover * executed_share(actions, settlement.executed), now)
        return settlement

    def _after_fields(
        self,
        rebalance_id: int,
        before: Snapshot,
        after: Snapshot,
        executed: Sequence[Action],
        settlement: Settlement,
    ) -> RebalanceUpdate:
        """Balances after against before; what `reconcile` should expect from now on."""
        view = value_portfolio(after, self.settings)
        self.metrics.observe(view)
        old, new = holdings(before), holdings(after)
        realized = {n: new.get(n, 0) - old.get(n, 0) for n in set(old) | set(new)}
        if settlement.failed_checks:
            # the journal expects what the plan quoted, so `reconcile` shows what is missing
            expected = dict(old)
            for name, change in action_changes(executed).items():
                expected[name] = expected.get(name, 0) + change
            expected[NATIVE] = after.eth_balance
            self._remember(after.block_number, expected)
        else:
            self._remember_holdings(after)
        return {
            "realized": {n: str(v) for n, v in sorted(realized.items()) if v},
            "realized_weights": view.weights,
            "value_after": view.total_value,
        }

    def _shortfall(self, rebalance_id: int, settlement: Settlement) -> RebalancerError:
        check = settlement.failed_checks[0]
        what = (
            "had no effect"
            if check.realized == 0
            else f"moved {check.realized} raw against a minimum of {check.minimum}"
        )
        message = (
            f"rebalance #{rebalance_id}: {check.token} {what} in {check.tx_hash} (quoted "
            f"{check.expected}); check the router and pool addresses, then `rebalancer resume`"
        )
        if self.settings.execution.halt_on_shortfall:
            return Halt(message)
        return SkipCycle(message)

    async def _settle_unfinished(self) -> None:
        """Rebalances a crash, a signal or an error left open: settled from the chain."""
        for row in self.journal.unsettled_rebalances():
            actions = tuple(_action_from_json(a) for a in row.trades)
            settlement = await self._settle(row.id, actions, None)
            if settlement is None:
                continue
            log.warning(
                "rebalance #%d was cut short; settled from the chain as %s",
                row.id,
                settlement.status,
            )
            if settlement.status == "shortfall":
                error = self._shortfall(row.id, settlement)
                if isinstance(error, Halt):
                    self.halt(str(error))

    def _remember_holdings(self, snapshot: Snapshot) -> None:
        """What the chain should show until the keeper trades again (`rebalancer reconcile`)."""
        expected = holdings(snapshot)
        expected[NATIVE] = snapshot.eth_balance
        self._remember(snapshot.block_number, expected)

    def _remember(self, block: int, expected: Mapping[str, int]) -> None:
        if self.mode != "live" and self.mode != "dry-run":
            return
        self.journal.set_state(
            "expected_holdings",
            json.dumps({"block": block, "holdings": {k: str(v) for k, v in expected.items()}}),
        )

    def _record_costs(self, plan: Plan) -> None:
        self.metrics.trade_cost.labels("fees").set(plan.fee_cost)
        self.metrics.trade_cost.labels("impact").set(plan.impact_cost)
        self.metrics.trade_cost.labels("gas").set(plan.gas_cost)

    # --- dry-run ------------------------------------------------------------------------------
    async def _simulate_on_fork(
        self, snapshot: Snapshot, view: Valuation, plan: Plan
    ) -> tuple[bool, RebalanceUpdate]:
        """Run the plan on an anvil forking the target at this block; the target is untouched.

        Returns whether every call succeeded, and what the rebalance's row records of it.

        anvil forks through a loopback forwarder (`bot/chain/fork_proxy.py`): the target's URL,
        API key and all, is never on its command line nor in its messages. Whatever goes wrong
        with the fork (anvil does not start, the target stops answering mid-way, a timeout)
        raises SkipCycle naming the target only as scheme://host:port; nothing was simulated,
        and the next cycle tries again.
        """
        settings = self.settings
        wallet = settings.wallet.address
        target = settings.chain.rpc_urls[0]
        needs, planned = plan_calls(plan, settings, self.pairs, wallet)
        calls: list[tuple[str, bytes, str]] = []
        for (token, spender), amount in needs.items():
            # the same approvals live mode would send, the USDT-style reset included
            symbol = next((s for s, t in settings.tokens.items() if t.address == token), None)
            if symbol and settings.tokens[symbol].approve_through_zero:
                calls.append((token, approve_data(spender, 0), "reset allowance"))
            calls.append((token, approve_data(spender, amount), "approve"))
        calls += [(call.to, call.data, call.what) for call, _ in planned]
        fork = fork_of(target, snapshot.block_number, settings.chain.chain_id)
        try:
            async with fork:  # starts without blocking the loop; stops anvil and its forwarder
                gas_used = 0
                reverted: str | None = None
                for to, data, what in calls:
                    tx = {
                        "from": wallet,
                        "to": to,
                        "data": "0x" + data.hex(),
                        "gas": hex(3_000_000),
                    }
                    # off the event loop: the fork may wait on the target for state
                    tx_hash = await asyncio.to_thread(fork.rpc, "eth_sendTransaction", tx)
                    receipt = await _fork_receipt(fork, tx_hash)
                    gas_used += int(receipt["gasUsed"], 16)
                    if receipt["status"] != "0x1":
                        reverted = what
                        break
                fork_settings = settings.model_copy(
                    update={"chain": settings.chain.model_copy(update={"rpc_urls": [fork.url]})}
                )
                async with rpc_client(fork_settings) as rpc:
                    reader = SnapshotReader(
                        rpc, fork_settings, self.reader.pools if self.reader else ()
                    )
                    after_snapshot = await reader.snapshot()
        except Halt:
            raise
        except (SkipCycle, *FORK_FAILURES) as err:
            reason = "dry-run: " + fork_failure(fork, target, err)
            log.warning("%s", reason)
            raise SkipCycle(reason) from None
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
        return reverted is None, {
            "status": "simulated" if reverted is None else "failed",
            "realized": {o.name: str(o.realized) for o in report.outcomes},
            "realized_weights": after.weights,
            "value_after": after.total_value,
            "gas_used": gas_used,
        }

    # --- paper --------------------------------------------------------------------------------
    def _paper_holdings(self, snapshot: Snapshot) -> dict[str, int]:
        raw = self.journal.get_state("paper_holdings")
        if raw is None:
            start = holdings(snapshot)
            start[NATIVE] = snapshot.eth_balance
            self.journal.set_state(
                "paper_holdings", json.dumps({k: str(v) for k, v in start.items()})
            )
            return start
        return {k: int(v) for k, v in json.loads(raw).items()}

    def _paper_snapshot(self, snapshot: Snapshot) -> Snapshot:
        virtual = self._paper_holdings(snapshot)
        balances = tuple((symbol, virtual.get(symbol, 0)) for symbol, _ in snapshot.balances)
        pools = tuple(
            replace(state, wallet_lp=virtual.get(state.key, 0)) for state in snapshot.pools
        )
        return replace(
            snapshot,
            balances=balances,
            pools=pools,
            eth_balance=virtual.get(NATIVE, 0),
            other_holdings=(),
        )

    def _paper_fill(self, plan: Plan) -> None:
        virtual = {
            k: int(v)
            for k, v in json.loads(self.journal.get_state("paper_holdings") or "{}").items()
        }
        for name, change in expected_changes(plan).items():
            virtual[name] = virtual.get(name, 0) + change
        self.journal.set_state(
            "paper_holdings", json.dumps({k: str(v) for k, v in virtual.items()})
        )

    # --- cost basis ---------------------------------------------------------------------------
    def _bootstrap_lots(self, view: Valuation) -> None:
        """First run: open one lot per holding at today's price (the true cost is unknown)."""
        if self.journal.has_lots():
            return
        for asset, amount, unit_cost in seed_lots(view):
            self.journal.add_lot(asset, amount, unit_cost, None)

    def _update_lots(self, actions: Sequence[Action], rebalance_id: int) -> float:
        """Buys open lots at the traded price; sells close lots FIFO or HIFO. Returns the gain."""
        decimals = {symbol: t.decimals for symbol, t in self.settings.tokens.items()}
        gain = 0.0
        for action in actions:
            if not isinstance(action, Swap):
                continue
            # one swap at a time: a later swap may sell what an earlier one bought
            sold_units, bought_units = swap_units(action, decimals)
            proceeds = action.value_in  # numeraire value given up, at valuation prices
            lots = self.journal.open_lots(action.path[0])
            closures, realized = apply_trade(
                lots, sold_units, proceeds, self.settings.keeper.lot_method
            )
            for lot_id, amount in closures:
                self.journal.reduce_lot(lot_id, amount)
            self.journal.add_lot(
                action.path[-1],
                bought_units,
                opened_unit_cost(bought_units, proceeds),
                rebalance_id,
            )
            gain += realized
        return gain


def _fees_of(record: Any) -> Fees:
    return Fees(0, record.max_priority_fee, record.max_fee)


async def _fork_receipt(
    fork: AnvilProcess, tx_hash: str, wait_seconds: float = 30.0
) -> dict[str, Any]:
    # A fork fetches state lazily: the receipt can trail the hash by a moment.
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        receipt = await asyncio.to_thread(fork.rpc, "eth_getTransactionReceipt", tx_hash)
        if receipt is not None:
            return dict(receipt)
        await asyncio.sleep(0.05)
    raise SkipCycle(f"the fork did not mine {tx_hash} within {wait_seconds:g}s")


def _action_from_json(data: Mapping[str, Any]) -> Action:
    """A plan action back from the rebalance row's `trades`, integers exact."""
    kind = {"swap": Swap, "remove_liquidity": RemoveLiquidity, "add_liquidity": AddLiquidity}
    cls = kind[data["kind"]]
    values: dict[str, Any] = {}
    for spec in fields(cls):
        value = data[spec.name]
        if spec.type == "int":
            value = int(value)
        elif str(spec.type).startswith("tuple"):
            value = tuple(value)
        values[spec.name] = value
    action: Action = cls(**values)
    return action


def _check_json(check: Check) -> dict[str, Any]:
    return {
        "tx": check.tx_hash,
        "actions": list(check.actions),
        "token": check.token,
        "expected": str(check.expected),
        "minimum": str(check.minimum),
        "realized": str(check.realized),
        "ok": check.ok,
    }


def _action_json(action: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in action.__slots__:
        value = getattr(action, name)
        out[name] = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if isinstance(action, Swap):
        out["path"] = list(action.path)
        out["pools"] = list(action.pools)
    return out


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> bool:
        return exc_type is TimeoutError
