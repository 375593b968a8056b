"""Live mode: the plan is signed and sent, and each rebalance is settled from its receipts.

Whatever way an execution ends (it ran to its end, an error cut it short, a crash left it for the
next start), what was mined is settled the same way (`bot.execution.settle`) and handed to the
keeper as an Outcome to record and charge; a rebalance with a transaction still in flight is
settled once that transaction is final.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace

from bot.chain.reader import SnapshotReader
from bot.errors import FeeTooHigh, Halt, RebalancerError, SkipCycle
from bot.execution.fees import suggest_fees
from bot.execution.outcome import Expected, Outcome, action_from_json, check_json
from bot.execution.reconcile import action_changes, holdings
from bot.execution.relay import BundleRelay
from bot.execution.run import execute_plan, execute_plan_as_bundle
from bot.execution.sender import Sender
from bot.execution.settle import (
    Settlement,
    Step,
    executed_costs,
    executed_share,
    settle,
    shortfall_value,
    transfer_flows,
)
from bot.guards import gas_balance
from bot.journal import Journal, RebalanceUpdate
from bot.metrics import Metrics
from bot.portfolio import Valuation, value_portfolio
from bot.settings import Settings
from bot.types import NATIVE, Action, Plan, Snapshot

log = logging.getLogger(__name__)


class LiveExecutor:
    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        metrics: Metrics,
        sender: Sender,
        reader: SnapshotReader,
        pairs: Mapping[str, str],
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.metrics = metrics
        self.sender = sender
        self.reader = reader
        self.pairs = pairs

    def portfolio(self, snapshot: Snapshot) -> Snapshot:
        return snapshot

    def unchanged(self, snapshot: Snapshot) -> Expected | None:
        return Expected.of(snapshot)

    async def execute(
        self, plan: Plan, snapshot: Snapshot, view: Valuation, rebalance_id: int
    ) -> Outcome:
        try:
            await self._send(plan, snapshot, view, rebalance_id)
        except FeeTooHigh as err:
            self.metrics.gas_cap_hits.inc()
            outcome = await self._settle(rebalance_id, plan.actions, snapshot)
            return replace(outcome, finished=False, error=err)
        except (RebalancerError, TimeoutError, OSError) as err:
            # cut short: what was mined is recorded and charged, then the cycle ends as it would
            outcome = await self._settle(rebalance_id, plan.actions, snapshot)
            if outcome.error is not None:  # a shortfall, found after the error
                outcome.error.__cause__ = err
                return replace(outcome, finished=False)
            return replace(outcome, finished=False, error=err)
        outcome = await self._settle(rebalance_id, plan.actions, snapshot)
        if outcome.result is None:  # not settled: a transaction is in flight
            return replace(
                outcome,
                error=SkipCycle(
                    f"rebalance #{rebalance_id}: a transaction is still in flight; it is settled "
                    "when it is final"
                ),
            )
        if outcome.error is None and outcome.result != "executed":
            return replace(
                outcome,
                error=SkipCycle(
                    f"rebalance #{rebalance_id} ended {outcome.result}: a transaction of the plan "
                    "reverted on chain; `rebalancer history` has the details"
                ),
            )
        return outcome

    async def _send(
        self, plan: Plan, snapshot: Snapshot, view: Valuation, rebalance_id: int
    ) -> None:
        execution = self.settings.execution
        fees = await suggest_fees(self.sender.rpc, execution)
        eth_price = view.prices[NATIVE].spot if NATIVE in view.prices else 0.0
        refused = gas_balance(plan, fees.max_fee, snapshot, self.reader.vault, self.settings)
        if refused:
            # no retry storm: every cycle would fail the same way until someone tops it up
            raise Halt(refused)
        if execution.relay_url:
            relay = BundleRelay(execution.relay_url)
            await execute_plan_as_bundle(
                plan,
                self.settings,
                self.sender,
                relay,
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

    async def settle_unfinished(self) -> AsyncIterator[tuple[int, Outcome]]:
        for row in self.journal.unsettled_rebalances():
            actions = tuple(action_from_json(a) for a in row.trades)
            outcome = await self._settle(row.id, actions, None)
            if outcome.result is None:
                continue
            log.warning(
                "rebalance #%d was cut short; settled from the chain as %s", row.id, outcome.result
            )
            yield row.id, outcome

    async def _settle(
        self, rebalance_id: int, actions: Sequence[Action], before: Snapshot | None
    ) -> Outcome:
        """What the rebalance's mined transactions did, to record and charge: nothing (no
        result) while one of them is still in flight, for the next cycle or the next start to
        settle. A shortfall comes with its error, a Halt or a SkipCycle as configured."""
        steps = await self._steps(rebalance_id)
        if steps is None:
            return Outcome()
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
        executed = tuple(actions[i] for i in settlement.executed)
        fields: RebalanceUpdate = {
            "status": settlement.status,
            "checks": [check_json(c) for c in settlement.checks],
            "gas_used": settlement.gas_used,
            "gas_cost_wei": str(settlement.gas_paid_wei),
            "tx_hashes": [s.tx_hash for s in steps],
        }
        expected = None
        if before is not None and steps:
            try:
                after = await self.reader.snapshot()
            except RebalancerError as err:  # the record stands on the receipts alone
                log.warning("rebalance #%d: reading the chain after: %s", rebalance_id, err)
            else:
                expected = self._after(before, after, executed, settlement, fields)
        return Outcome(
            result=settlement.status,
            row=fields,
            executed=executed,
            loss=loss,
            turnover_share=(
                executed_share(actions, settlement.executed) if settlement.executed else None
            ),
            gas_paid_wei=settlement.gas_paid_wei,
            expected=expected,
            error=self._shortfall(rebalance_id, settlement),
        )

    async def _steps(self, rebalance_id: int) -> list[Step] | None:
        """The rebalance's mined transactions, from their receipts; None while one is in flight."""
        names = {t.address.lower(): symbol for symbol, t in self.settings.tokens.items()}
        names.update({address.lower(): key for key, address in self.pairs.items()})
        steps = []
        for record in self.journal.transactions_of(rebalance_id):
            # every record is looked up, whatever the journal thinks of it: the chain decides
            receipt = await self.sender.receipt(record.tx_hash)
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
        return steps

    def _after(
        self,
        before: Snapshot,
        after: Snapshot,
        executed: Sequence[Action],
        settlement: Settlement,
        fields: RebalanceUpdate,
    ) -> Expected:
        """Balances after against before, into `fields`; what the chain should show from now."""
        view = value_portfolio(after, self.settings)
        self.metrics.observe(view)
        old, new = holdings(before), holdings(after)
        realized = {n: new.get(n, 0) - old.get(n, 0) for n in set(old) | set(new)}
        fields["realized"] = {n: str(v) for n, v in sorted(realized.items()) if v}
        fields["realized_weights"] = view.weights
        fields["value_after"] = view.total_value
        if not settlement.failed_checks:
            return Expected.of(after)
        # the journal expects what the plan quoted, so `reconcile` shows what is missing
        expected = dict(old)
        for name, change in action_changes(executed).items():
            expected[name] = expected.get(name, 0) + change
        expected[NATIVE] = after.eth_balance
        return Expected(after.block_number, expected)

    def _shortfall(self, rebalance_id: int, settlement: Settlement) -> RebalancerError | None:
        if settlement.status != "shortfall":
            return None
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
