"""README claims that need a chain and that no other test covered: the demo as `make demo` runs
it, the fixture build's cache and checks, the best-effort TWAP read, `chain.retry` as the
commands use it, the journal found from `--config`, approvals, a private endpoint's refusal,
`execution.halt_on_shortfall`, paper losses, the two triggers and the cycle deadline."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

import anvil_fixtures.builder as builder
from anvil_fixtures.builder import build, inputs_hash
from bot.chain.anvil import find_anvil
from bot.chain.reader import SnapshotReader
from bot.chain.rpc import RpcClient
from bot.errors import SetupError
from bot.execution.calls import approve_data
from bot.execution.run import approval_calls
from bot.journal import Journal
from bot.metrics import Metrics
from bot.paths import ROOT, prices_csv
from bot.portfolio import value_portfolio
from bot.settings import Settings, load_settings
from tests.conftest import Chain
from tests.helpers import contract, send
from tests.keeper_helpers import config_file, keeper_settings, make_keeper, run_cli
from tests.proxy import RpcProxy

LOCAL = ROOT / "config" / "local.toml"


def rows(journal: Path, sql: str) -> list[tuple[Any, ...]]:
    """Straight from the journal's tables, as the README describes them."""
    with sqlite3.connect(journal) as db:
        return db.execute(sql).fetchall()


def with_keeper(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"keeper": settings.keeper.model_copy(update=changes)})


def with_execution(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"execution": settings.execution.model_copy(update=changes)})


# --- the demo ----------------------------------------------------------------------------------
def test_the_demo_does_what_the_readme_says(tmp_path: Path) -> None:
    done = run_cli(
        "demo", "--journal", str(tmp_path / "demo.sqlite"), "--metrics-port", "0", timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    steps = re.split(r"\n(?=\d\) )", out)
    dry, live, shock, refused, later = steps[1:6]
    assert dry.startswith("1) dry-run")
    assert "   rebalanced:" in dry
    assert "the chain is untouched" in dry
    assert live.startswith("2) live")
    assert "   rebalanced:" in live
    assert "ETH 194.87 -> 112.35 USD" in shock  # 12 March 2020: -42%
    assert "   skipped: price guard:" in refused  # spot far from its TWAP: not traded
    assert "   rebalanced:" in later  # the TWAP window has passed
    table = later.split("after the crash and the rebalance:")[1]
    weights = re.findall(r"^  (\w+)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%$", table, re.MULTILINE)
    assert len(weights) == 5
    bands = load_settings(LOCAL).strategy
    for unit, target, _, after in weights:
        assert abs(float(after) - float(target)) <= 100 * bands.width(unit), unit  # in its band
    assert 'rebalancer_rebalances_total{result="executed"} 2.0' in out


# --- the fixture build -------------------------------------------------------------------------
def test_the_installed_anvil_is_1_7_1() -> None:
    done = subprocess.run(
        [str(find_anvil()), "--version"], capture_output=True, text=True, check=True
    )
    assert re.search(r"\b1\.7\.1\b", done.stdout), done.stdout


def test_an_unchanged_build_is_reused(default_fixture: builder.Fixture) -> None:
    state = default_fixture.state_path.stat()
    again = build("default")
    after = again.state_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (state.st_ino, state.st_mtime_ns)


def test_the_build_hash_covers_every_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [
        "package-lock.json",
        "bot/chain/anvil.py",
        "bot/amm.py",
        *(p.relative_to(ROOT).as_posix() for p in (ROOT / "anvil_fixtures").glob("*.py")),
        *(p.relative_to(ROOT).as_posix() for p in (ROOT / "contracts_abi").glob("*.json")),
    ]
    for name in inputs:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    scenario = tmp_path / "default.toml"
    shutil.copy(ROOT / "anvil_fixtures" / "scenarios" / "default.toml", scenario)
    prices = tmp_path / "prices.csv"
    shutil.copy(prices_csv(), prices)
    monkeypatch.setattr(builder, "ROOT", tmp_path)
    base = inputs_hash(str(scenario), False, prices)
    assert inputs_hash(str(scenario), True, prices) != base
    for path in [scenario, prices, *(tmp_path / name for name in inputs)]:
        text = path.read_bytes()
        path.write_bytes(text + b"\n")
        assert inputs_hash(str(scenario), False, prices) != base, path
        path.write_bytes(text)
    assert inputs_hash(str(scenario), False, prices) == base


@pytest.mark.parametrize("check", ["pool price", "wallet balance"])
def test_a_build_that_fails_a_check_leaves_nothing(
    check: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(builder, "FIXTURE_BUILD", tmp_path / "build")
    if check == "pool price":
        monkeypatch.setattr(builder, "PRICE_TOLERANCE", Fraction(0))  # no price is that exact
        expected = "is off the dataset's"
    else:
        fund = builder._Deployment._fund_wallet

        def one_wei_short(self: Any) -> None:
            fund(self)
            self.expected_balances["LINK"] += 1

        monkeypatch.setattr(builder._Deployment, "_fund_wallet", one_wei_short)
        expected = "wallet LINK balance"
    with pytest.raises(SetupError, match=expected):
        build("default", force=True)
    assert list((tmp_path / "build").iterdir()) == []  # no state, no manifest, no temp folder


# --- the reader --------------------------------------------------------------------------------
async def test_a_node_without_the_old_state_leaves_the_twap_unavailable(
    chain: Chain, tmp_path: Path
) -> None:
    settings = keeper_settings(chain.url, tmp_path)
    chain.rpc("anvil_mine", hex(settings.valuation.twap_window_seconds // 12 + 5), hex(12))

    def pruned(batch: list[dict[str, Any]], body: bytes) -> bytes | None:
        if [r["method"] for r in batch] != ["eth_call", "eth_call"]:
            return None
        answers = json.loads(body)
        answers[1] = {
            "jsonrpc": "2.0",
            "id": answers[1]["id"],
            "error": {"code": -32000, "message": "missing trie node"},
        }
        return json.dumps(answers).encode()

    async with RpcProxy(chain.url) as proxy, RpcClient([proxy.url], chain_id=31337) as rpc:
        reader = await SnapshotReader.connect(rpc, settings)
        full = await reader.snapshot()
        proxy.mutate = pruned
        proxy.requests.clear()
        blind = await reader.snapshot()
        batches = [[r["method"] for r in batch] for batch in proxy.requests]
    assert full.history
    assert full.history_timestamp is not None
    assert ["eth_call", "eth_call"] in batches  # the window-old read rides in the same batch
    assert blind.history == ()
    assert blind.history_timestamp is None
    assert (blind.block_number, blind.balances) == (full.block_number, full.balances)
    view = value_portfolio(blind, settings)  # missing_twap = "allow": valued on spot prices
    assert all(price.twap is None for price in view.pools.values())


# --- commands ----------------------------------------------------------------------------------
async def test_commands_retry_as_chain_retry_says(chain: Chain, tmp_path: Path) -> None:
    config = config_file(tmp_path, extra="\n[chain.retry]\nattempts = 2\nbackoff_seconds = 0.01\n")
    key = chain.manifest["keeper"]["private_key"]
    async with RpcProxy(chain.url) as proxy:
        proxy.status = 429  # every request: rate-limited
        for command in (
            ["status", "--config", str(config)],
            ["deploy-executor", "--config", str(config), "--journal", str(tmp_path / "j.sqlite")],
        ):
            proxy.requests.clear()
            args = [*command, "--rpc-url", proxy.url]
            done = await asyncio.to_thread(run_cli, *args, key=key)
            assert done.returncode == 2, (command, done.stdout, done.stderr)
            last = done.stderr.strip().splitlines()[-1]
            assert last.startswith("error: "), done.stderr
            assert "429" in last
            assert len(proxy.requests) == 2, command  # chain.retry.attempts, not the default 3


def test_every_command_finds_the_journal_from_config(chain: Chain, tmp_path: Path) -> None:
    config = config_file(tmp_path / "etc", journal="state/journal.sqlite")
    (tmp_path / "etc" / "state").mkdir()
    journal = tmp_path / "etc" / "state" / "journal.sqlite"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = run_cli(
        "dry-run",
        "--config",
        str(config),
        "--rpc-url",
        chain.url,
        "--metrics-port",
        "0",
        "--max-cycles",
        "1",
        cwd=elsewhere,
    )
    assert ran.returncode == 0, ran.stderr
    assert rows(journal, "SELECT mode FROM cycles") == [("dry-run",)]
    reconciled = run_cli(
        "reconcile", "--config", str(config), "--rpc-url", chain.url, cwd=elsewhere
    )
    assert reconciled.returncode == 0, reconciled.stderr
    assert "match the journal" in reconciled.stdout
    deployed = run_cli(
        "deploy-executor",
        "--config",
        str(config),
        "--rpc-url",
        chain.url,
        cwd=elsewhere,
        key=chain.manifest["keeper"]["private_key"],
    )
    assert deployed.returncode == 0, deployed.stderr
    assert rows(journal, "SELECT status FROM transactions") == [("mined",)]  # the deployment
    assert list(elsewhere.iterdir()) == []  # nothing written where the commands ran


def test_readers_need_no_lock(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    holder = Journal(path)
    holder.hold_exclusively()  # as a running keeper does
    holder.set_state("halted", "test")
    try:
        assert run_cli("history", "--journal", str(path), "--json").returncode == 0
        resumed = run_cli("resume", "--journal", str(path))
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed" in resumed.stdout
        reconciled = run_cli(
            "reconcile", "--config", str(LOCAL), "--rpc-url", chain.url, "--journal", str(path)
        )
        assert "in use by another keeper" not in reconciled.stderr
        assert "no expected holdings yet" in reconciled.stderr  # it read the journal
    finally:
        holder.close()


# --- execution ---------------------------------------------------------------------------------
async def test_approvals_exact_capped_skipped_and_through_zero(
    chain: Chain, tmp_path: Path
) -> None:
    base = keeper_settings(chain.url, tmp_path)
    keeper = chain.manifest["keeper"]["address"]
    router = chain.manifest["venues"]["uniswap"]["router"]
    usdc, usdt = chain.token("USDC"), chain.token("USDT")
    needs = {(usdc, router): 1_000, (usdt, router): 1_000}
    async with RpcClient([chain.url], chain_id=31337) as rpc:
        exact = await approval_calls(rpc, base, keeper, needs)
        assert [c.data for c in exact] == [approve_data(router, 1_000)] * 2
        capped = with_execution(base, approval="capped", approval_cap=2.5)
        assert [c.data for c in await approval_calls(rpc, capped, keeper, needs)] == [
            approve_data(router, 2_500)
        ] * 2
        send(chain.w3, contract(chain.w3, usdc, "IERC20").functions.approve(router, 1_000), keeper)
        send(chain.w3, contract(chain.w3, usdt, "IERC20").functions.approve(router, 5), keeper)
        after = await approval_calls(rpc, base, keeper, needs)
    # USDC's allowance already suffices: skipped; USDT's (non-zero, too small) goes through 0
    assert [(c.to, c.data) for c in after] == [
        (usdt, approve_data(router, 0)),
        (usdt, approve_data(router, 1_000)),
    ]


@pytest.fixture
def _empty_pool(chain: Chain) -> Any:
    yield
    chain.rpc("anvil_dropAllTransactions")


@pytest.mark.usefixtures("_empty_pool")
async def test_a_refusal_from_the_private_endpoint_never_goes_public(
    chain: Chain, tmp_path: Path
) -> None:
    keeper = chain.manifest["keeper"]["address"]
    nonce = chain.w3.eth.get_transaction_count(keeper)

    refused: list[Any] = []  # ids of the sends the private endpoint refused

    def keep_it_here(batch: list[dict[str, Any]]) -> None:
        for request in batch:  # a refusing endpoint does not pass the transaction on
            if request["method"] == "eth_sendRawTransaction":
                refused.append(request["id"])
                request["method"], request["params"] = "eth_chainId", []

    def refuse(batch: list[dict[str, Any]], body: bytes) -> bytes | None:
        if batch[0]["id"] not in refused:
            return None
        error = {"code": -32000, "message": "transaction refused by policy"}
        return json.dumps(
            [{"jsonrpc": "2.0", "id": r["id"], "error": error} for r in batch]
        ).encode()

    async with RpcProxy(chain.url) as public, RpcProxy(chain.url) as private:
        private.rewrite = keep_it_here
        private.mutate = refuse
        settings = with_execution(
            keeper_settings(public.url, tmp_path),
            private_rpc_url=private.url,
            private_fallback_to_public=True,  # even so: a refusal is not an outage
            poll_seconds=0.05,
        )
        journal = Journal(tmp_path / "j.sqlite")
        async with make_keeper(settings, "live", journal, Metrics(), chain.manifest) as live:
            result = await live.cycle()
        journal.close()
    assert result.status in {"skipped", "failed"}
    assert "transaction refused by policy" in (result.reason or "")
    assert len(refused) == 1  # refused once, not retried
    assert "eth_sendRawTransaction" not in public.methods
    assert chain.w3.eth.get_transaction_count(keeper) == nonce


async def test_a_shortfall_without_halt_on_shortfall_skips(chain: Chain, tmp_path: Path) -> None:
    settings = with_execution(keeper_settings(chain.url, tmp_path), halt_on_shortfall=False)
    settings = with_keeper(settings, daily_loss_cap=1e12)  # the shortfall alone, not the loss cap
    venues = {}
    for venue, spec in settings.venues.items():  # a typo in every router address
        real = spec.router
        typo = Web3.to_checksum_address(real[:-1] + ("0" if real[-1] != "0" else "1"))
        assert chain.w3.eth.get_code(typo) == b""
        venues[venue] = spec.model_copy(update={"router": typo})
    settings = settings.model_copy(update={"venues": venues})
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    async with make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper:
        result = await keeper.cycle()
    assert result.status == "skipped"
    assert "had no effect" in (result.reason or "")
    assert journal.get_state("halted") is None
    journal.close()
    assert rows(path, "SELECT status FROM rebalances") == [("shortfall",)]
    sent = rows(path, "SELECT rebalance_id, covers FROM transactions")
    assert {rebalance for rebalance, _ in sent} == {1}
    covered = [json.loads(covers) for _, covers in sent]
    assert [] in covered  # the approvals carry out no action
    assert sorted(i for c in covered for i in c) == list(range(sum(1 for c in covered if c)))


async def test_paper_charges_the_plans_costs_to_the_loss_cap(chain: Chain, tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    settings = keeper_settings(chain.url, tmp_path)
    async with make_keeper(settings, "paper", journal, Metrics(), chain.manifest) as keeper:
        assert (await keeper.cycle()).status == "rebalanced"
    loss_today = float(journal.get_state("loss_today") or 0)
    journal.close()
    ((status, loss, fees, impact, gas, checks, prices),) = rows(
        path, "SELECT status, loss, fee_cost, impact_cost, gas_cost, checks, prices FROM rebalances"
    )
    assert status == "paper"
    assert loss == pytest.approx(fees + impact + gas)
    assert loss > 0
    assert loss_today == pytest.approx(loss)
    assert json.loads(prices)["ETH"] > 0
    assert checks is None  # nothing mined, nothing to check


# --- the loop ----------------------------------------------------------------------------------
async def test_the_interval_and_block_triggers(chain: Chain, tmp_path: Path) -> None:
    base = keeper_settings(chain.url, tmp_path)
    times: list[float] = []
    blocks: list[int | None] = []

    def seen(result: Any) -> None:
        times.append(time.monotonic())
        blocks.append(result.block)

    timed = with_keeper(base, trigger_on="interval", interval_seconds=1.0)
    journal = Journal(tmp_path / "interval.sqlite")
    async with make_keeper(timed, "paper", journal, Metrics(), chain.manifest) as keeper:
        assert await keeper.run(asyncio.Event(), 2, seen) == 2
    journal.close()
    assert times[1] - times[0] >= 1.0

    times.clear()
    blocks.clear()
    on_blocks = with_keeper(base, trigger_on="block", poll_seconds=0.05)
    journal = Journal(tmp_path / "block.sqlite")
    async with make_keeper(on_blocks, "paper", journal, Metrics(), chain.manifest) as keeper:
        task = asyncio.create_task(keeper.run(asyncio.Event(), 2, seen))
        while not times:  # noqa: ASYNC110 (waits for the first cycle)
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert len(times) == 1  # no new block: no new cycle
        chain.rpc("evm_mine")
        assert await asyncio.wait_for(task, 30) == 2
    journal.close()
    assert blocks[0] is not None
    assert blocks[1] == blocks[0] + 1


async def test_a_cycle_past_its_deadline_fails(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = with_keeper(keeper_settings(chain.url, tmp_path), cycle_deadline_seconds=0.5)
    journal = Journal(tmp_path / "j.sqlite")
    async with make_keeper(settings, "paper", journal, Metrics(), chain.manifest) as keeper:
        assert keeper.reader is not None

        seen: list[tuple[Any, ...]] = []

        async def hangs() -> None:
            seen.extend(rows(tmp_path / "j.sqlite", "SELECT status FROM cycles"))
            await asyncio.sleep(30)

        monkeypatch.setattr(keeper.reader, "snapshot", hangs)
        started = time.monotonic()
        result = await keeper.cycle()
    assert time.monotonic() - started < 5
    assert result.status == "failed"
    assert "TimeoutError" in (result.reason or "")
    assert journal.get_state("consecutive_failures") == "1"
    journal.close()
    assert seen == [("running",)]  # the cycle's row is written when it starts
    assert rows(tmp_path / "j.sqlite", "SELECT status FROM cycles") == [("failed",)]
