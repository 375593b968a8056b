"""kill -9 while a transaction is pending, then restart: nothing executes twice and the journal
agrees with the chain."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from bot.journal import Journal
from bot.settings import load_settings
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.helpers import automine_off
from tests.keeper_helpers import LOCAL_CONFIG, keeper_command

SLIPPAGE_BPS = load_settings(LOCAL_CONFIG).execution.slippage_bps
# the live keeper: a threshold trigger (it rebalances at once), and a quick poll for receipts
FAST = {"STRATEGY__TRIGGER": "threshold", "EXECUTION__POLL_SECONDS": "0.1"}


def keeper(chain: Chain, journal: Path, cycles: int) -> subprocess.Popen[str]:
    argv, env = keeper_command(chain, journal, cycles, settings=FAST)
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def sent_and_open(journal_path: Path, keeper_address: str) -> list[str]:
    """The hashes of the transactions the running keeper has journaled as sent and not settled
    yet (none before its journal exists)."""
    if not journal_path.exists():
        return []
    journal = Journal(journal_path)
    try:
        open_transactions = journal.open_transactions(keeper_address)
    finally:
        journal.close()
    return [r.tx_hash for r in open_transactions if r.status == "sent"]


@adversarial
@pytest.mark.parametrize("lost_in_the_pool", [False, True])
def test_kill_9_with_a_transaction_pending(
    chain: Chain, tmp_path: Path, lost_in_the_pool: bool, faults: Faults
) -> None:
    watch = faults.watch(chain)
    journal_path = tmp_path / "journal.sqlite"
    keeper_address = chain.manifest["keeper"]["address"]
    with automine_off(chain):
        first = keeper(chain, journal_path, 1)
        deadline = time.monotonic() + 60
        pending: list[str] = []
        while time.monotonic() < deadline and not pending:
            pending = sent_and_open(journal_path, keeper_address)
            time.sleep(0.1)
        assert pending, "the keeper never sent a transaction"
        first.send_signal(signal.SIGKILL)  # after sending, before recording the outcome
        faults.process(first.communicate(timeout=10)[1])
        if lost_in_the_pool:
            chain.rpc("anvil_dropTransaction", pending[0])
        else:
            chain.rpc("evm_mine")  # it lands while the keeper is dead

    second = keeper(chain, journal_path, 2)
    _, err = second.communicate(timeout=180)
    faults.process(err)
    assert second.returncode == 0, err

    journal = Journal(journal_path)
    nonce = chain.w3.eth.get_transaction_count(keeper_address)
    records = [r for n in range(nonce + 2) for r in journal.by_nonce(keeper_address, n)]
    mined = [r for r in records if r.status == "mined"]
    # every nonce the wallet used was used by exactly one journaled, mined transaction
    assert sorted(r.nonce for r in mined) == list(range(nonce))
    for record in mined:
        receipt = chain.rpc("eth_getTransactionReceipt", record.tx_hash)
        assert receipt is not None
        assert receipt["blockHash"] == record.block_hash
    assert journal.open_transactions(keeper_address) == []
    assert pending[0] in {r.tx_hash for r in mined}  # the first one was settled, not redone
    statuses = sorted(row.status for row in journal.rebalances())
    # the killed run's attempt is settled from the chain at the restart: its first
    # transaction mined, the rest of that plan was never sent; the restart rebalanced once
    assert statuses == ["executed", "partial"]
    watch.finish(executions=watch.allow_journal(journal, SLIPPAGE_BPS))


@adversarial
async def test_kill_9_with_a_bundle_pending(chain: Chain, tmp_path: Path, faults: Faults) -> None:
    """The relay accepts the bundle and never lands it; the keeper is killed while it waits.
    On restart the bundle's transactions are settled as dropped once their blocks are past,
    never re-sent through the public mempool, and the next plan executes once."""
    import asyncio
    import contextlib

    from tests.fake_relay import FakeRelay

    watch = faults.watch(chain)
    journal_path = tmp_path / "journal.sqlite"
    keeper_address = chain.manifest["keeper"]["address"]

    async def start(relay_url: str, cycles: int) -> asyncio.subprocess.Process:
        relay = {"EXECUTION__RELAY_URL": relay_url}
        argv, env = keeper_command(chain, journal_path, cycles, settings=FAST | relay)
        return await asyncio.create_subprocess_exec(
            *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )

    async def mine_forever() -> None:
        while True:
            await asyncio.to_thread(chain.rpc, "evm_mine")
            await asyncio.sleep(0.2)

    async with FakeRelay(chain.url) as relay:
        relay.include = False
        first = await start(relay.url, 1)
        sent: list[str] = []
        for _ in range(300):
            await asyncio.sleep(0.1)
            sent = sent_and_open(journal_path, keeper_address)
            if sent:
                break
        assert sent, "the keeper never sent its bundle"
        first.kill()  # kill -9 while the bundle is pending
        await first.wait()
        assert first.stderr is not None
        faults.process(await first.stderr.read())
        relay.include = True
        miner = asyncio.create_task(mine_forever())
        try:
            second = await start(relay.url, 3)
            _, err = await asyncio.wait_for(second.communicate(), 180)
        finally:
            miner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await miner
    faults.process(err)
    assert second.returncode == 0, err.decode()
    journal = Journal(journal_path)
    for tx_hash in sent:
        record = journal.get(tx_hash)
        assert record is not None
        # settled as dropped; or, when the new plan re-signed the very same transaction (same
        # nonce, calldata and fees: the same hash), carried by the new bundle and mined once
        assert record.status in {"dropped", "mined"}
        if record.status == "dropped":
            assert chain.rpc("eth_getTransactionByHash", tx_hash) is None  # never went public
        else:
            assert tx_hash in relay.landed  # carried by the relay, not the public mempool
    nonce = chain.w3.eth.get_transaction_count(keeper_address)
    records = [r for n in range(nonce + len(sent)) for r in journal.by_nonce(keeper_address, n)]
    mined = [r for r in records if r.status == "mined"]
    assert sorted(r.nonce for r in mined) == list(range(nonce))  # every used nonce, once
    statuses = [row.status for row in journal.rebalances()]  # newest first
    reasons = [c.reason for c in journal.cycles()]
    assert statuses[-1] == "not_sent", statuses  # the killed attempt: its bundle never landed
    assert statuses.count("executed") == 1, (statuses, reasons)  # and one execution after it
    watch.finish(executions=watch.allow_journal(journal, SLIPPAGE_BPS))
