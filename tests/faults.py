"""Measured fault figures: what each adversarial test observed, and the sum the run ends with.

An adversarial test is marked `@adversarial` (or `pytestmark = adversarial`), never by its name,
and reports three figures through the `faults` fixture:

- **funds lost beyond slippage bounds.** `faults.watch(chain)` reads, at one block, the keeper's
  nonce and the holder's ETH, token and LP balances; `watch.finish(...)` reads them again. For
  each asset the change (plus the gas the keeper's own transactions paid, less any change the
  test made itself: `watch.injected`) is compared with the floor the scenario guaranteed: 0 when
  nothing may leave the wallet, a transfer's amount (`watch.allow`), `-amount_in + min_out` for
  each swap of a plan that ran, and the like for liquidity (`watch.allow_actions`,
  `watch.allow_journal`; an action ran when a successful keeper transaction carries its amounts).
  Every shortfall below its floor is lost, valued in wei at the pool prices read when the watch
  started (rounded up, never netted against a gain in another asset).
- **duplicate executions.** The keeper's transactions mined between the two reads are found
  block by block (and checked against the nonce), with their receipts. The successful ones other
  than approvals are executions. Duplicates: executions beyond what the scenario allows, or the
  same call (target and calldata) succeeding more than once, whichever is larger.
- **exceptions escaped.** `faults.escaped(*refusals)` wraps keeper calls: an exception of a
  refusal type is the expected answer; any other one is counted and re-raised, so the test fails.
  A keeper run as a process counts a traceback on its stderr (`faults.process`).

A figure that does not apply (a parser fuzzed with no chain) is declared with
`faults.not_applicable`. A test that passed with a figure neither reported nor declared, or that
failed, is unmeasured, and the summary names it.
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pytest

from bot.types import slippage_floor

if TYPE_CHECKING:
    from bot.journal import Journal
    from tests.conftest import Chain

adversarial = pytest.mark.adversarial

PROPERTY = "faults"  # the name of the observation in each test's user_properties
FIGURES = ("loss", "duplicates", "escaped")
ETH = "ETH"
APPROVE = "0x095ea7b3"  # approve(address,uint256): idempotent, not an execution of a trade
BALANCE_OF = "0x70a08231"
TOTAL_SUPPLY = "0x18160ddd"
GET_RESERVES = "0x0902f1ac"
# a plan recorded in live mode with any other status may have run, in part or whole
NOTHING_SENT = {"simulated", "paper", "waiting_gas", "not_sent"}


def _rpc_batch(url: str, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """One JSON-RPC batch, answered in order; any error raises."""
    out: list[Any] = []
    for start in range(0, len(calls), 200):
        chunk = calls[start : start + 200]
        body = json.dumps(
            [
                {"jsonrpc": "2.0", "id": i, "method": method, "params": params}
                for i, (method, params) in enumerate(chunk)
            ]
        ).encode()
        request = urllib.request.Request(  # noqa: S310 (the test chain's http URL)
            url, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            answers = {a["id"]: a for a in json.loads(response.read())}
        for i, (method, _) in enumerate(chunk):
            if "error" in answers[i]:
                raise RuntimeError(f"{method} failed: {answers[i]['error']}")
            out.append(answers[i]["result"])
    return out


def _call(to: str, data: str, block: str) -> tuple[str, list[Any]]:
    return "eth_call", [{"to": to, "data": data}, block]


def _address_word(address: str) -> str:
    return address.lower().removeprefix("0x").rjust(64, "0")


class ChainWatch:
    """Balances, nonce and prices at the start of a fault; what changed, measured at the end."""

    def __init__(self, faults: Faults, chain: Chain, holder: str | None = None) -> None:
        self._faults = faults
        self.url = chain.url
        manifest = chain.manifest
        self.sender: str = manifest["keeper"]["address"]
        self.holder: str = holder or self.sender
        self.assets: dict[str, str] = {s: t["address"] for s, t in manifest["tokens"].items()}
        self.assets.update({p["key"]: p["address"] for p in manifest["pools"]})
        self._weth = {s for s, t in manifest["tokens"].items() if t.get("weth")}
        self._pools: list[dict[str, Any]] = manifest["pools"]
        self.floors: dict[str, int] = {}
        self.actions: list[tuple[str, dict[str, int]]] = []  # (calldata fingerprint, floors)
        self.injections: dict[str, int] = {}
        self.finished = False
        self.block, self.nonce, self.balances = self._read()
        self.prices = self._prices(hex(self.block))

    # --- what the scenario allows -------------------------------------------------------------
    def allow(self, asset: str, change: int) -> None:
        """The scenario may change `asset` by as little as `change` (negative: at most that much
        leaves the holder)."""
        if asset != ETH and asset not in self.assets:
            raise KeyError(f"{asset} is not an asset of the fixture chain")
        self.floors[asset] = self.floors.get(asset, 0) + change

    def allow_actions(self, actions: Iterable[Any], slippage_bps: float) -> int:
        """The floors a plan's actions guarantee on chain (planner objects or the journal's JSON):
        a swap takes `amount_in` and returns at least `min_out`; a removal burns `liquidity` for
        at least `min0`/`min1`; an addition takes at most the desired amounts for at least the
        quoted liquidity less the slippage. An action counts as run when a successful keeper
        transaction carries its amounts as Router02 calldata does; one that did not run has a
        floor of 0 (so does a plan run some other way: the measure errs towards a loss).
        Returns the number of actions."""
        count = 0
        for action in actions:

            def get(name: str, action: Any = action) -> Any:
                return action[name] if isinstance(action, dict) else getattr(action, name)

            kind = get("kind")
            floors: dict[str, int] = {}

            def add(asset: str, change: int, floors: dict[str, int] = floors) -> None:
                if asset not in self.assets:
                    raise KeyError(f"{asset} is not an asset of the fixture chain")
                floors[asset] = floors.get(asset, 0) + change

            if kind == "swap":
                path = list(get("path"))
                add(path[0], -int(get("amount_in")))
                add(path[-1], int(get("min_out")))
                words = [get("amount_in"), get("min_out")]
            elif kind == "remove_liquidity":
                add(get("pool"), -int(get("liquidity")))
                add(get("token0"), int(get("min0")))
                add(get("token1"), int(get("min1")))
                words = [get("liquidity"), get("min0"), get("min1")]
            elif kind == "add_liquidity":
                add(get("token0"), -int(get("amount0_desired")))
                add(get("token1"), -int(get("amount1_desired")))
                add(get("pool"), slippage_floor(int(get("expected_liquidity")), slippage_bps))
                words = [get(n) for n in ("amount0_desired", "amount1_desired", "min0", "min1")]
            else:
                raise ValueError(f"unknown action kind {kind!r}")
            fingerprint = "".join(f"{int(w):064x}" for w in words)
            self.actions.append((fingerprint, floors))
            count += 1
        return count

    def allow_journal(self, journal: Journal, slippage_bps: float) -> int:
        """The floors of every plan the keeper recorded before sending it in live mode (a plan may
        have run once, in part or whole). Returns the number of their actions: the most that may
        execute."""
        return sum(
            self.allow_actions(row.trades, slippage_bps)
            for row in journal.rebalances()
            if row.mode == "live" and row.status not in NOTHING_SENT
        )

    def injected(self, asset: str, change: int) -> None:
        """A change the test itself made to the holder's balance (a drain, a rebase)."""
        self.injections[asset] = self.injections.get(asset, 0) + change

    def balance(self, asset: str) -> int:
        """The holder's balance of `asset` now."""
        if asset == ETH:
            return int(_rpc_batch(self.url, [("eth_getBalance", [self.holder, "latest"])])[0], 16)
        data = BALANCE_OF + _address_word(self.holder)
        return int(_rpc_batch(self.url, [_call(self.assets[asset], data, "latest")])[0], 16)

    # --- measuring ------------------------------------------------------------------------------
    def finish(self, executions: int) -> None:
        """Read the chain again and report: `executions` is the most the scenario lets run (trades
        and transfers; approvals are not counted)."""
        block, nonce, balances = self._read()
        mined = self._mined_by_sender(block)
        notes: list[str] = []
        gas = sum(int(r["gasUsed"], 16) * int(r["effectiveGasPrice"], 16) for _, r in mined)
        succeeded = [tx["input"] for tx, r in mined if int(r["status"], 16) == 1]
        floors = dict(self.floors)
        ran = 0
        carried = Counter(  # how often each action's amounts appear in successful calldata
            {f: sum(data.count(f) for data in succeeded) for f, _ in self.actions}
        )
        for fingerprint, action_floors in self.actions:
            if carried[fingerprint] > 0:  # two identical actions need two carriers
                carried[fingerprint] -= 1
                ran += 1
                for asset, change in action_floors.items():
                    floors[asset] = floors.get(asset, 0) + change
        if self.actions:
            notes.append(f"{ran} of {len(self.actions)} planned actions ran")
        loss = 0
        unpriced: dict[str, int] = {}  # asset -> raw units short of a floor, where none prices it
        for asset, before in self.balances.items():
            change = balances[asset] - before - self.injections.get(asset, 0)
            if asset == ETH and self.holder.lower() == self.sender.lower():
                change += gas  # the keeper's gas is a cost under its own caps, not slippage
            short = floors.get(asset, 0) - change
            if short <= 0:
                continue
            notes.append(f"{asset} short of its floor by {short} raw units")
            price = self.prices.get(asset)
            if price is None:
                unpriced[asset] = unpriced.get(asset, 0) + short
            else:
                loss += math.ceil(short * price)
        duplicates: int | None
        if len(mined) != nonce - self.nonce:
            notes.append(
                f"{len(mined)} transactions found in blocks {self.block + 1}..{block} but the "
                f"nonce moved by {nonce - self.nonce}: executions not measured"
            )
            duplicates = None
        else:
            done = [
                tx
                for tx, receipt in mined
                if int(receipt["status"], 16) == 1 and not tx["input"].startswith(APPROVE)
            ]
            repeats = Counter((tx.get("to"), tx["input"]) for tx in done)
            duplicates = max(len(done) - executions, sum(n - 1 for n in repeats.values()), 0)
        self.finished = True
        self._faults.report_chain(
            loss_wei=loss,
            unpriced=unpriced,
            transactions=len(mined),
            duplicates=duplicates,
            gas_wei=gas,
            notes=notes,
        )

    def _read(self) -> tuple[int, int, dict[str, int]]:
        (head,) = _rpc_batch(self.url, [("eth_blockNumber", [])])
        calls = [
            ("eth_getTransactionCount", [self.sender, head]),
            ("eth_getBalance", [self.holder, head]),
        ]
        data = BALANCE_OF + _address_word(self.holder)
        calls += [_call(address, data, head) for address in self.assets.values()]
        nonce, eth, *raw = _rpc_batch(self.url, calls)
        balances = {ETH: int(eth, 16)}
        balances.update({a: int(r, 16) for a, r in zip(self.assets, raw, strict=True)})
        return int(head, 16), int(nonce, 16), balances

    def _prices(self, block: str) -> dict[str, Fraction]:
        """Wei per raw unit at `block`: WETH 1:1, tokens through the deepest priced pool, LP
        tokens by their share of both reserves. An asset no pool prices stays out."""
        calls = []
        for pool in self._pools:
            calls += [
                _call(pool["address"], GET_RESERVES, block),
                _call(pool["address"], TOTAL_SUPPLY, block),
            ]
        answers = _rpc_batch(self.url, calls)
        state = {}
        for i, pool in enumerate(self._pools):
            words = answers[2 * i].removeprefix("0x")
            state[pool["key"]] = (
                pool,
                int(words[:64], 16),
                int(words[64:128], 16),
                int(answers[2 * i + 1], 16),
            )
        prices: dict[str, Fraction] = {ETH: Fraction(1)}
        prices.update({symbol: Fraction(1) for symbol in self._weth})
        while True:
            best: dict[str, tuple[Fraction, Fraction]] = {}  # token: (depth in wei, price)
            for pool, r0, r1, _ in state.values():
                for known, reserve_known, other, reserve_other in (
                    (pool["token0"], r0, pool["token1"], r1),
                    (pool["token1"], r1, pool["token0"], r0),
                ):
                    if known in prices and other not in prices and reserve_other > 0:
                        depth = reserve_known * prices[known]
                        if depth > best.get(other, (Fraction(-1), Fraction(0)))[0]:
                            best[other] = (depth, depth / reserve_other)
            if not best:
                break
            prices.update({token: price for token, (_, price) in best.items()})
        for key, (pool, r0, r1, supply) in state.items():
            if supply and pool["token0"] in prices and pool["token1"] in prices:
                prices[key] = (r0 * prices[pool["token0"]] + r1 * prices[pool["token1"]]) / supply
        return prices

    def _mined_by_sender(self, head: int) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        blocks = _rpc_batch(
            self.url,
            [("eth_getBlockByNumber", [hex(n), True]) for n in range(self.block + 1, head + 1)],
        )
        sent = [
            tx
            for block in blocks
            for tx in block["transactions"]
            if tx["from"].lower() == self.sender.lower()
        ]
        receipts = _rpc_batch(
            self.url, [("eth_getTransactionReceipt", [tx["hash"]]) for tx in sent]
        )
        return list(zip(sent, receipts, strict=True))


class Guard:
    """Counts an exception that escapes the wrapped keeper calls; a refusal type is expected and
    kept in `error`. Works with `with` and `async with`."""

    def __init__(self, faults: Faults, refusals: tuple[type[BaseException], ...]) -> None:
        self._faults = faults
        self._refusals = refusals
        self.error: BaseException | None = None

    def __enter__(self) -> Guard:
        self._faults._guarded()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if error is None:
            return False
        if self._refusals and isinstance(error, self._refusals):
            self.error = error
            return True
        # pytest's own outcomes (fail, skip) are BaseExceptions and not counted
        if isinstance(error, Exception | asyncio.CancelledError):
            self._faults._escape(error)
        return False

    async def __aenter__(self) -> Guard:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return self.__exit__(kind, error, traceback)


class Faults:
    """One test's observations; each change is written to the test's user_properties at once, so
    it reaches the report of the phase it happened in."""

    def __init__(self, node: pytest.Item) -> None:
        self._node = node
        self._watches: list[ChainWatch] = []
        self.observation: dict[str, Any] = {
            "loss_wei": None,  # None: not reported
            "unpriced": {},  # asset -> raw units short of a floor, where no pool prices it
            "duplicates": None,
            "duplicates_unmeasured": False,  # a watch could not count executions
            "transactions": None,  # the keeper's transactions mined while watched
            "gas_wei": None,
            "escaped": None,
            "escapes": [],
            "fuzzed": 0,
            "not_applicable": {},  # figure -> why
            "unfinished": 0,  # chain watches started and never finished
            "notes": [],
        }

    def watch(self, chain: Chain, holder: str | None = None) -> ChainWatch:
        """Snapshot the chain now (the holder defaults to the keeper wallet)."""
        watch = ChainWatch(self, chain, holder)
        self._watches.append(watch)
        return watch

    def escaped(self, *refusals: type[BaseException]) -> Guard:
        return Guard(self, refusals)

    def fuzz(self, *refusals: type[BaseException]) -> Guard:
        """`escaped`, for one fuzzed input."""
        self.observation["fuzzed"] += 1
        return Guard(self, refusals)

    def process(self, stderr: str | bytes) -> None:
        """A keeper run as a process: a traceback on its stderr is an exception that escaped."""
        text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        self._guarded()
        if "Traceback (most recent call last)" in text:
            last = text.strip().splitlines()[-1] if text.strip() else "?"
            self._escape_named(f"process: {last}")

    def not_applicable(self, *figures: str, why: str) -> None:
        for figure in figures:
            if figure not in FIGURES:
                raise ValueError(f"{figure!r} is not one of {FIGURES}")
            self.observation["not_applicable"][figure] = why
        self._publish()

    def report_chain(
        self,
        *,
        loss_wei: int,
        transactions: int,
        duplicates: int | None,
        unpriced: dict[str, int] | None = None,
        gas_wei: int = 0,
        notes: Sequence[str] = (),
    ) -> None:
        """Add one measurement of the chain (a test may watch more than once)."""
        seen = self.observation
        seen["loss_wei"] = (seen["loss_wei"] or 0) + loss_wei
        for asset, units in (unpriced or {}).items():
            seen["unpriced"][asset] = seen["unpriced"].get(asset, 0) + units
        seen["transactions"] = (seen["transactions"] or 0) + transactions
        seen["gas_wei"] = (seen["gas_wei"] or 0) + gas_wei
        if duplicates is None:
            seen["notes"].append("executions not measured")
            seen["duplicates_unmeasured"] = True
        elif not seen.get("duplicates_unmeasured"):
            seen["duplicates"] = (seen["duplicates"] or 0) + duplicates
        seen["notes"].extend(notes)
        self._publish()

    def close(self) -> None:
        self.observation["unfinished"] = sum(not w.finished for w in self._watches)
        self._publish()

    def _guarded(self) -> None:
        if self.observation["escaped"] is None:
            self.observation["escaped"] = 0
            self._publish()

    def _escape(self, error: BaseException) -> None:
        self._escape_named(f"{type(error).__name__}: {error}"[:200])

    def _escape_named(self, what: str) -> None:
        self.observation["escaped"] = (self.observation["escaped"] or 0) + 1
        self.observation["escapes"].append(what)
        self._publish()

    def _publish(self) -> None:
        properties = self._node.user_properties
        properties[:] = [p for p in properties if p[0] != PROPERTY]
        properties.append((PROPERTY, json.loads(json.dumps(self.observation))))


@pytest.fixture
def faults(request: pytest.FixtureRequest) -> Iterator[Faults]:
    """Where an adversarial test reports what it measured (see this module's docstring)."""
    recorder = Faults(request.node)
    yield recorder
    recorder.close()


# --- the summary --------------------------------------------------------------------------------
@dataclass
class FaultSummary:
    injected: int = 0  # adversarial tests that ran (passed or failed)
    fuzzed: int = 0
    measured: int = 0
    loss_wei: int = 0
    loss_tests: int = 0
    loss_not_applicable: int = 0
    unpriced: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    duplicate_tests: int = 0
    duplicates_not_applicable: int = 0
    transactions: int = 0
    escaped: int = 0
    escaped_tests: int = 0
    escaped_not_applicable: int = 0
    escaped_in_failed: int = 0
    skipped: int = 0
    unmeasured: list[tuple[str, str]] = field(default_factory=list)  # (test, why)
    findings: list[str] = field(default_factory=list)  # each nonzero figure, with its test

    def lines(self) -> list[str]:
        """The summary line, then one line per test with a nonzero figure."""
        return [self.line(), *(f"  {finding}" for finding in self.findings)]

    def line(self) -> str:
        fuzzed = f" ({self.fuzzed} fuzzed inputs among them)" if self.fuzzed else ""
        parts = [
            f"faults injected: {self.injected} tests{fuzzed}",
            f"measured: {self.measured}",
            f"funds lost beyond slippage bounds: {self.loss_wei} wei-equivalent over "
            f"{self.loss_tests} tests{_na(self.loss_not_applicable)}"
            + (
                " + unpriced raw units "
                + ", ".join(f"{a} {u}" for a, u in sorted(self.unpriced.items()))
                if self.unpriced
                else ""
            ),
            f"duplicate executions: {self.duplicates} (counted on chain over "
            f"{self.duplicate_tests} tests, {self.transactions} keeper transactions"
            f"{_na(self.duplicates_not_applicable, ', ')})",
            f"exceptions escaped: {self.escaped} over {self.escaped_tests} tests"
            + _na(self.escaped_not_applicable)
            + (f" (+{self.escaped_in_failed} in failed tests)" if self.escaped_in_failed else ""),
            f"unmeasured: {len(self.unmeasured)}"
            + (
                " (" + ", ".join(f"{name} [{why}]" for name, why in self.unmeasured) + ")"
                if self.unmeasured
                else ""
            ),
        ]
        if self.skipped:
            parts.append(f"skipped: {self.skipped}")
        return "; ".join(parts)


def _na(count: int, lead: str = "") -> str:
    if not count:
        return ""
    return f"{lead}not applicable in {count}" if lead else f" (not applicable in {count})"


def _observation(reports: Sequence[Any]) -> dict[str, Any] | None:
    found = None
    for report in reports:  # setup, call, teardown: the last one holds the most
        for name, value in getattr(report, "user_properties", ()):
            if name == PROPERTY:
                found = value
    return found


def _missing(seen: dict[str, Any]) -> list[str]:
    missing = []
    reported = {
        "loss": seen["loss_wei"] is not None,
        "duplicates": seen["duplicates"] is not None,
        "escaped": seen["escaped"] is not None,
    }
    for figure in FIGURES:
        if not reported[figure] and figure not in seen["not_applicable"]:
            missing.append(figure)
    return missing


def summarize(reports: Iterable[Any]) -> FaultSummary | None:
    """Add up the observations of the adversarial tests among `reports` (pytest TestReports of
    any phase). None when no adversarial test ran."""
    by_test: dict[str, list[Any]] = {}
    for report in reports:
        if getattr(report, "when", None) and "adversarial" in getattr(report, "keywords", {}):
            by_test.setdefault(report.nodeid, []).append(report)
    if not by_test:
        return None
    order = {"setup": 0, "call": 1, "teardown": 2}
    summary = FaultSummary()
    for name, phases in by_test.items():
        phases.sort(key=lambda r: order.get(r.when, 3))
        seen = _observation(phases)
        failed = any(r.failed for r in phases)
        passed = any(r.when == "call" and r.passed for r in phases)
        if not failed and not passed:
            summary.skipped += 1
            continue
        summary.injected += 1
        if seen:
            summary.fuzzed += seen["fuzzed"]
        if failed:
            if seen and seen["escaped"]:
                summary.escaped_in_failed += seen["escaped"]
            summary.unmeasured.append((name, "failed"))
            continue
        missing = _missing(seen) if seen else list(FIGURES)
        if len(missing) == len(FIGURES) or seen is None:
            summary.unmeasured.append((name, "passed, reported nothing"))
            continue
        if seen["unfinished"]:
            missing.append(f"{seen['unfinished']} chain watch(es) never finished")
        if missing:
            summary.unmeasured.append((name, "passed, no figure for " + ", ".join(missing)))
            continue
        summary.measured += 1
        found = [
            f"{label} {seen[key]}"
            for key, label in (
                ("loss_wei", "lost (wei-equivalent)"),
                ("duplicates", "duplicate executions"),
                ("escaped", "exceptions escaped"),
            )
            if seen[key]
        ]
        if found or seen["unpriced"]:
            details = "; ".join([*found, *seen["notes"], *seen["escapes"]])
            summary.findings.append(f"{name}: {details}")
        if seen["loss_wei"] is not None:
            summary.loss_wei += seen["loss_wei"]
            summary.loss_tests += 1
            for asset, units in seen["unpriced"].items():
                summary.unpriced[asset] = summary.unpriced.get(asset, 0) + units
        else:
            summary.loss_not_applicable += 1
        if seen["duplicates"] is not None:
            summary.duplicates += seen["duplicates"]
            summary.duplicate_tests += 1
            summary.transactions += seen["transactions"] or 0
        else:
            summary.duplicates_not_applicable += 1
        if seen["escaped"] is not None:
            summary.escaped += seen["escaped"]
            summary.escaped_tests += 1
        else:
            summary.escaped_not_applicable += 1
    return summary
