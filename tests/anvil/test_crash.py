"""kill -9 while a transaction is pending, then restart: nothing executes twice and the journal
agrees with the chain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.journal import Journal
from bot.paths import ROOT
from tests.conftest import Chain


def keeper(chain: Chain, journal: Path, cycles: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "REBALANCER_PRIVATE_KEY": chain.manifest["keeper"]["private_key"],
        "REBALANCER_STRATEGY__TRIGGER": "threshold",
        "REBALANCER_EXECUTION__POLL_SECONDS": "0.1",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            "--mode",
            "live",
            "--config",
            str(ROOT / "config" / "local.toml"),
            "--rpc-url",
            chain.url,
            "--journal",
            str(journal),
            "--metrics-port",
            "0",
            "--max-cycles",
            str(cycles),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("lost_in_the_pool", [False, True])
def test_kill_9_with_a_transaction_pending(
    chain: Chain, tmp_path: Path, lost_in_the_pool: bool
) -> None:
    journal_path = tmp_path / "journal.sqlite"
    keeper_address = chain.manifest["keeper"]["address"]
    chain.rpc("evm_setAutomine", False)
    try:
        first = keeper(chain, journal_path, 1)
        deadline = time.monotonic() + 60
        pending: list[str] = []
        while time.monotonic() < deadline and not pending:
            if journal_path.exists():
                journal = Journal(journal_path)
                pending = [
                    r.tx_hash
                    for r in journal.open_transactions(keeper_address)
                    if r.status == "sent"
                ]
                journal.close()
            time.sleep(0.1)
        assert pending, "the keeper never sent a transaction"
        first.send_signal(signal.SIGKILL)  # after sending, before recording the outcome
        first.communicate(timeout=10)
        if lost_in_the_pool:
            chain.rpc("anvil_dropTransaction", pending[0])
        else:
            chain.rpc("evm_mine")  # it lands while the keeper is dead
    finally:
        chain.rpc("evm_setAutomine", True)

    second = keeper(chain, journal_path, 2)
    _, err = second.communicate(timeout=180)
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
    statuses = sorted(row["status"] for row in journal.rebalances())
    # the killed run left its attempt on record; the restart executed the rebalance once
    assert statuses == ["executed", "started"]
