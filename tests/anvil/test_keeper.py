"""The keeper on the fixture chain: modes, circuit breaker, signals, journal, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bot.errors import TemporaryError
from bot.journal import Journal
from bot.keeper import choose_mode
from bot.metrics import Metrics
from bot.paths import ROOT
from bot.settings import load_settings
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.keeper_helpers import (
    LOCAL_CONFIG,
    keeper_command,
    keeper_settings,
    make_keeper,
    run_cli,
)


@adversarial
async def test_dry_run_sends_nothing_to_the_target(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    w3 = chain.w3
    keeper_address = chain.manifest["keeper"]["address"]
    block, nonce = w3.eth.block_number, w3.eth.get_transaction_count(keeper_address)
    journal = Journal(tmp_path / "j.sqlite")
    async with (
        faults.escaped(),
        make_keeper(settings, "dry-run", journal, Metrics(), chain.manifest) as keeper,
    ):
        result = await keeper.cycle()
    assert result.status == "rebalanced", result.reason
    (row,) = journal.rebalances()
    assert row.status == "simulated"
    assert row.gas_used is not None
    assert row.gas_used > 100_000
    assert row.realized  # what would have happened, token by token
    assert row.quoted == {k: v for k, v in row.realized.items() if k in row.quoted}
    assert (w3.eth.block_number, w3.eth.get_transaction_count(keeper_address)) == (block, nonce)
    watch.finish(executions=0)


async def test_paper_mode_trades_a_virtual_portfolio(chain: Chain, tmp_path: Path) -> None:
    settings = keeper_settings(chain.url, tmp_path)
    block = chain.w3.eth.block_number
    journal = Journal(tmp_path / "j.sqlite")
    async with make_keeper(settings, "paper", journal, Metrics(), chain.manifest) as keeper:
        first = await keeper.cycle()
        second = await keeper.cycle()
    assert first.status == "rebalanced"
    assert second.status == "skipped", second.reason  # the virtual portfolio is balanced now
    (row,) = journal.rebalances()
    assert row.status == "paper"
    virtual = json.loads(journal.get_state("paper_holdings") or "{}")
    assert int(virtual["LINK"]) > int(chain.manifest["wallet"]["tokens"]["LINK"])
    assert chain.w3.eth.block_number == block  # the chain never saw a transaction


@adversarial
async def test_circuit_breaker_halts_and_stays_halted_until_resumed(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    settings = settings.model_copy(
        update={"keeper": settings.keeper.model_copy(update={"max_consecutive_failures": 3})}
    )
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    metrics = Metrics()
    async with (
        faults.escaped(),
        make_keeper(settings, "dry-run", journal, metrics, chain.manifest) as keeper,
    ):

        async def broken() -> None:
            raise TemporaryError("the node is down")

        assert keeper.reader is not None
        monkeypatch.setattr(keeper.reader, "snapshot", broken)
        statuses = [(await keeper.cycle()).status for _ in range(4)]
    assert statuses == ["failed", "failed", "failed", "halted"]
    assert "3 consecutive failed cycles" in (journal.get_state("halted") or "")
    assert metrics.halted._value.get() == 1
    journal.close()
    # a restart finds the halt in the journal
    journal = Journal(path)
    async with (
        faults.escaped(),
        make_keeper(settings, "dry-run", journal, Metrics(), chain.manifest) as keeper,
    ):
        assert (await keeper.cycle()).status == "halted"
    journal.close()
    resumed = run_cli("resume", "--journal", str(path))  # a CLI call between cycles, on purpose
    faults.process(resumed.stderr)
    assert "resumed; it had halted because: 3 consecutive failed cycles" in resumed.stdout
    journal = Journal(path)
    async with (
        faults.escaped(),
        make_keeper(settings, "dry-run", journal, Metrics(), chain.manifest) as keeper,
    ):
        assert (await keeper.cycle()).status == "rebalanced"
    watch.finish(executions=0)  # dry-run throughout


@adversarial
async def test_daily_loss_cap_halts(chain: Chain, tmp_path: Path, faults: Faults) -> None:
    watch = faults.watch(chain)
    settings = keeper_settings(chain.url, tmp_path)
    settings = settings.model_copy(
        update={"keeper": settings.keeper.model_copy(update={"daily_loss_cap": 10.0})}
    )
    journal = Journal(tmp_path / "j.sqlite")
    async with (
        faults.escaped(),
        make_keeper(settings, "live", journal, Metrics(), chain.manifest) as keeper,
    ):
        first = await keeper.cycle()
        assert first.status == "rebalanced"
        assert "daily loss cap" in (journal.get_state("halted") or "")
        assert (await keeper.cycle()).status == "halted"
    # the one plan it ran, at most once, within its minimum outputs; nothing after the halt
    watch.finish(executions=watch.allow_journal(journal, settings.execution.slippage_bps))


@adversarial
def test_sigterm_stops_cleanly_with_the_journal_flushed(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    journal = tmp_path / "j.sqlite"
    argv, env = keeper_command(
        chain, journal, None, mode=None, settings={"KEEPER__INTERVAL_SECONDS": "0.5"}
    )
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    assert "dry-run mode" in process.stdout.readline()  # no key configured: dry-run
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and Journal(journal).cycles():
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    faults.process(err)
    assert process.returncode == 0, err
    assert "stopped after" in out
    cycles = Journal(journal).cycles()
    assert cycles
    assert cycles[-1].status in {"rebalanced", "skipped"}
    watch.finish(executions=0)  # no key: dry-run


def test_history_and_config_commands(chain: Chain, tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    ran = run_cli(
        "dry-run",
        "--config",
        str(LOCAL_CONFIG),
        "--rpc-url",
        chain.url,
        "--journal",
        str(journal),
        "--metrics-port",
        "0",
        "--max-cycles",
        "1",
    )
    assert ran.returncode == 0, ran.stderr
    history = run_cli("history", "--journal", str(journal), "--json")
    rows = json.loads(history.stdout)
    assert rows[0]["status"] == "simulated"
    csv_path = tmp_path / "h.csv"
    exported = run_cli("history", "--journal", str(journal), "--csv", str(csv_path))
    assert exported.returncode == 0, exported.stderr
    assert csv_path.read_text().splitlines()[0].startswith("id,time,block,mode,status")
    check = run_cli("config", "check", str(LOCAL_CONFIG))
    assert "valid (7 tokens, 12 pools" in check.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(LOCAL_CONFIG.read_text().replace("FOT = 0.005 }", "FOT = 0.5 }"))
    refused = run_cli("config", "check", str(bad))
    assert refused.returncode == 2
    assert "portfolio.targets: weights sum to" in refused.stderr
    schema = run_cli("config", "schema")
    assert schema.returncode == 0, schema.stderr
    assert "portfolio" in json.loads(schema.stdout)["properties"]


def test_a_mainnet_config_without_a_key_runs_dry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REBALANCER_WALLET__ADDRESS", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8")
    monkeypatch.delenv("REBALANCER_PRIVATE_KEY", raising=False)
    settings = load_settings(ROOT / "config" / "mainnet.toml")
    assert choose_mode(settings, None, None) == "dry-run"
    from bot.errors import Halt

    with pytest.raises(Halt, match="live mode signs transactions"):
        choose_mode(settings, None, "live")
