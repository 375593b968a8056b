"""The keeper loop: read, value, decide, plan, act, record; under a deadline, behind a circuit
breaker, stoppable by a signal without leaving anything half-done or unrecorded.

How a plan is carried out is the mode's (`bot.keeper.modes`): an `Executor` chosen when the keeper
starts. Whatever the mode, the keeper records what a rebalance came to in one place
(`Keeper._record_outcome`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.chain.reader import SnapshotReader
from bot.chain.rpc import RpcClient, out_of_descriptors
from bot.decide import Evaluation, evaluate
from bot.errors import DataError, Halt, RebalancerError, SkipCycle
from bot.execution.connect import connected
from bot.execution.outcome import Executor, Outcome, action_json
from bot.execution.reconcile import expected_changes
from bot.execution.recovery import recover
from bot.execution.sender import Sender
from bot.execution.signer import Signer
from bot.guards import price_guard
from bot.journal import CycleStatus, Journal
from bot.keeper.books import Books
from bot.keeper.breaker import Breaker
from bot.keeper.modes import Mode, executor_for
from bot.keeper.schedule import next_trigger
from bot.metrics import Metrics
from bot.portfolio import Valuation, value_portfolio
from bot.settings import Settings
from bot.types import Plan, Snapshot
from strategies.state import observation, observe

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CycleResult:
    status: str  # rebalanced | skipped | failed | halted
    reason: str | None
    block: int | None
    duration: float
    rebalance_id: int | None = None
    skip: str | None = None  # why it skipped: "dataerror", "inside_band", ...


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
        self.executor: Executor | None = None  # the mode's, chosen once connected
        self.breaker = Breaker(journal, metrics, settings.keeper)
        self.books = Books(journal, settings)
        self.cycle_id = 0  # the journal's row for the cycle in progress

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
        self.executor = executor_for(
            self.mode, self.settings, self.journal, self.metrics, self.reader, self.sender
        )
        if self.sender is not None:
            await recover(self.sender)  # what a crash left signed or sent, before anything new
        await self._settle_unfinished()
        self.metrics.halted.set(1 if self.breaker.halted_reason() else 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._connection.aclose()
        finally:
            self.journal.release()

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
                last_block = await next_trigger(self.rpc, self.settings.keeper, stop, last_block)
                if stop.is_set():
                    break
            result = await self.cycle()
            if on_cycle is not None:
                on_cycle(result)
            last_block = result.block if result.block is not None else last_block
            cycles += 1
        return cycles

    async def cycle(self) -> CycleResult:
        started = time.monotonic()
        self.cycle_id = self.journal.start_cycle(self.mode)
        halted = self.breaker.halted_reason()
        if halted:
            self.metrics.halted.set(1)
            self.journal.record_cycle(self.cycle_id, "halted", halted, None, None, None, 0.0)
            return CycleResult("halted", halted, None, 0.0)
        try:
            async with asyncio.timeout(self.settings.keeper.cycle_deadline_seconds):
                result = await self._cycle(started)
        except DataError as err:
            result = self._finish(started, "skipped", str(err), None, "dataerror")
        except SkipCycle as err:
            result = self._finish(started, "skipped", str(err), None, type(err).__name__.lower())
        except Halt as err:
            self.breaker.halt(str(err))
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
        self.breaker.count(result.status == "failed", result.reason, result.skip == "dataerror")
        self.metrics.cycle_duration.observe(result.duration)
        return result

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
        assert self.executor is not None
        await self._settle_unfinished()  # a rebalance an error left in flight, once final
        snapshot = self.executor.portfolio(await self.reader.snapshot())
        view = value_portfolio(snapshot, self.settings)
        self.metrics.observe(view)
        self.books.bootstrap_lots(view)
        now = max(int(time.time()), snapshot.timestamp)
        state = observe(self.books.strategy_state(), self.settings.strategy, observation(view, now))
        evaluation = evaluate(snapshot, view, self.settings, state, now)
        if evaluation.decision.evaluated:
            state = replace(state, last_evaluation=now)
        if not evaluation.rebalance:
            self.books.save_strategy_state(state)
            self.books.remember(self.executor.unchanged(snapshot))
            reason = evaluation.gate.reason if evaluation.gate else evaluation.decision.reason
            return self._finish(started, "skipped", reason, view, evaluation.skip_reason)
        plan = evaluation.plan
        assert plan is not None
        refused = price_guard(plan, view)
        if refused:
            raise SkipCycle(refused)
        self.breaker.check_daily_loss(now)
        self.books.save_strategy_state(state)  # acting charges turnover and cooldown on top of it
        rebalance_id = await self._act(snapshot, view, evaluation, plan)
        return self._finish(
            started, "rebalanced", evaluation.decision.reason, view, None, rebalance_id
        )

    # --- acting and recording ------------------------------------------------------------------
    async def _act(
        self, snapshot: Snapshot, view: Valuation, evaluation: Evaluation, plan: Plan
    ) -> int:
        assert self.executor is not None
        rebalance_id = self._record_plan(snapshot, view, evaluation, plan)
        outcome = await self.executor.execute(plan, snapshot, view, rebalance_id)
        self._record_outcome(rebalance_id, outcome)
        if outcome.finished:
            self._record_costs(plan)
        if outcome.error is not None:
            raise outcome.error
        return rebalance_id

    def _record_plan(
        self, snapshot: Snapshot, view: Valuation, evaluation: Evaluation, plan: Plan
    ) -> int:
        """The rebalance's row, written before anything is sent: a crash leaves a record that
        says what was attempted."""
        decision = evaluation.decision
        return self.journal.record_rebalance(
            cycle_id=self.cycle_id,
            time=time.time(),
            block=snapshot.block_number,
            mode=self.mode,
            status="started",
            reason=decision.reason,
            pre_weights=view.weights,
            post_weights=dict(plan.post_weights),
            trades=[action_json(a) for a in plan.actions],
            quoted={k: str(v) for k, v in expected_changes(plan).items()},
            value_before=view.total_value,
            turnover=math.fsum(v for v in decision.deltas.values() if v > 0),
            fee_cost=plan.fee_cost,
            impact_cost=plan.impact_cost,
            gas_cost=plan.gas_cost,
            prices={name: price.spot for name, price in view.prices.items()},
        )

    def _record_outcome(self, rebalance_id: int, outcome: Outcome) -> None:
        """What a rebalance came to, in any mode, written and charged: its row, the cost-basis
        lots, what the chain should show, the metrics, the daily loss, the turnover."""
        row = outcome.row.copy()
        if outcome.executed is not None:
            row["realized_gain"] = self.books.update_lots(outcome.executed, rebalance_id)
        if outcome.loss is not None:
            row["loss"] = outcome.loss
        self.books.remember(outcome.expected)
        if row:
            self.journal.update_rebalance(rebalance_id, **row)
        if outcome.gas_paid_wei:
            self.metrics.gas_spent.inc(outcome.gas_paid_wei)
        if outcome.result is not None:
            self.metrics.rebalances.labels(outcome.result).inc()
        if outcome.loss is None and outcome.turnover_share is None:
            return
        record = self.journal.rebalance(rebalance_id)
        now = int(record.time)
        if outcome.loss is not None:
            self.breaker.add_loss(outcome.loss, max(now, int(time.time())))
        if outcome.turnover_share is not None:
            self.books.charge_turnover(record.turnover * outcome.turnover_share, now)

    async def _settle_unfinished(self) -> None:
        """Rebalances a crash, a signal or an error left open: settled from the chain."""
        assert self.executor is not None
        async for rebalance_id, outcome in self.executor.settle_unfinished():
            self._record_outcome(rebalance_id, outcome)
            if isinstance(outcome.error, Halt):
                self.breaker.halt(str(outcome.error))

    def _record_costs(self, plan: Plan) -> None:
        self.metrics.trade_cost.labels("fees").set(plan.fee_cost)
        self.metrics.trade_cost.labels("impact").set(plan.impact_cost)
        self.metrics.trade_cost.labels("gas").set(plan.gas_cost)
