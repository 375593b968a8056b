"""Relay bundles and private submission."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from eth_account import Account

from bot.chain.rpc import RpcClient
from bot.errors import BundleReverted, NotSent
from bot.execution.fees import suggest_fees
from bot.execution.relay import BundleRelay
from bot.execution.run import execute_plan_as_bundle
from bot.execution.sender import Sender
from bot.execution.signer import Signer
from bot.journal import Journal
from bot.planner import plan
from bot.status import read_and_value
from bot.types import Swap
from tests.anvil.test_sender import settings_for, transfer_call
from tests.conftest import Chain
from tests.fake_relay import FakeRelay
from tests.faults import Faults, adversarial
from tests.proxy import RpcProxy


async def test_a_plan_lands_as_one_bundle_in_one_block(chain: Chain, tmp_path: Path) -> None:
    settings = settings_for(chain, confirmations=1)
    snapshot, view = await read_and_value(settings)
    proposed = plan(
        snapshot, view, settings, {"LINK": 20_000.0, "usd": -20_000.0}, int(time.time())
    )
    pairs = {p["key"]: p["address"] for p in chain.manifest["pools"]}
    journal = Journal(tmp_path / "j.sqlite")
    signer = Signer(Account.from_key(chain.manifest["keeper"]["private_key"]))
    async with FakeRelay(chain.url) as relay_server, RpcClient([chain.url], chain_id=31337) as rpc:
        relay = BundleRelay(relay_server.url)
        sender = Sender(rpc, signer, journal, settings.execution, 31337)
        fees = await suggest_fees(rpc, settings.execution)
        result = await execute_plan_as_bundle(proposed, settings, sender, relay, fees, 200.0, pairs)
    assert [m for m, _ in relay_server.calls] == ["eth_callBundle", "eth_sendBundle"]
    assert {a for _, a in relay_server.calls} == {
        relay.identity.address
    }  # signed with the identity key
    assert relay.identity.address != signer.address
    assert len({m.block_number for m in result.mined}) == 1  # all in one block
    assert all(m.status == 1 for m in result.mined)
    _, after = await read_and_value(settings)
    for unit in after.units:
        assert unit.weight == pytest.approx(proposed.post_weights[unit.unit], abs=1e-6)


@adversarial
async def test_a_reverting_bundle_sends_nothing(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    settings = settings_for(chain, confirmations=1)
    snapshot, view = await read_and_value(settings)
    proposed = plan(
        snapshot, view, settings, {"LINK": 20_000.0, "usd": -20_000.0}, int(time.time())
    )
    # the last swap demands more than it can get
    from dataclasses import replace

    last = proposed.actions[-1]
    assert isinstance(last, Swap)
    broken = replace(
        proposed, actions=(*proposed.actions[:-1], replace(last, min_out=last.expected_out * 2))
    )
    pairs = {p["key"]: p["address"] for p in chain.manifest["pools"]}
    keeper = chain.manifest["keeper"]["address"]
    nonce = chain.w3.eth.get_transaction_count(keeper)
    journal = Journal(tmp_path / "j.sqlite")
    async with (
        faults.escaped(),
        FakeRelay(chain.url) as relay_server,
        RpcClient([chain.url], chain_id=31337) as rpc,
    ):
        sender = Sender(
            rpc,
            Signer(Account.from_key(chain.manifest["keeper"]["private_key"])),
            journal,
            settings.execution,
            31337,
        )
        with pytest.raises(BundleReverted, match="reverts"):
            await execute_plan_as_bundle(
                broken,
                settings,
                sender,
                BundleRelay(relay_server.url),
                await suggest_fees(rpc, settings.execution),
                200.0,
                pairs,
            )
        assert await sender.next_nonce() == nonce
    assert [m for m, _ in relay_server.calls] == ["eth_callBundle"]
    assert chain.w3.eth.get_transaction_count(keeper) == nonce
    assert journal.open_transactions(keeper) == []
    watch.finish(executions=0)


@adversarial
async def test_a_private_transaction_never_falls_back_to_public(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)
    watch.allow("USDC", -3)  # one transfer, sent once: by the public fallback when allowed
    keeper = chain.manifest["keeper"]["address"]
    signer = Signer(Account.from_key(chain.manifest["keeper"]["private_key"]))
    async with (
        faults.escaped(),
        RpcProxy(chain.url) as public,
        RpcProxy(chain.url) as private_proxy,
    ):
        private_proxy.status = 502  # the private endpoint is down
        for allow, expect_public in ((False, False), (True, True)):
            settings = settings_for(chain, confirmations=1, private_fallback_to_public=allow)
            journal = Journal(tmp_path / f"j{allow}.sqlite")
            public.requests.clear()
            async with (
                RpcClient([public.url], chain_id=31337) as rpc,
                RpcClient([private_proxy.url], chain_id=31337) as private,
            ):
                sender = Sender(
                    rpc, signer, journal, settings.execution, 31337, private_rpc=private
                )
                call = transfer_call(chain, "USDC", chain.manifest["deployer"], 3)
                fees = await suggest_fees(rpc, settings.execution)
                if allow:
                    pending = await sender.send(call, fees)
                    assert (await sender.wait(pending)).status == 1
                else:
                    # The private endpoint answered 502: the transaction was not taken up, so it
                    # is journaled failed (its nonce free) and nothing reaches the public one.
                    with pytest.raises(NotSent, match="no private endpoint could be reached"):
                        await sender.send(call, fees)
                    (record,) = journal.by_nonce(keeper, await sender.next_nonce())
                    assert record.status == "failed"
                    assert await rpc.call("eth_getTransactionByHash", record.tx_hash) is None
            raw_sends = [
                r
                for batch in public.requests
                for r in batch
                if r["method"] == "eth_sendRawTransaction"
            ]
            assert bool(raw_sends) is expect_public
        assert chain.w3.eth.get_transaction_count(keeper) >= 1
    watch.finish(executions=1)


async def test_a_dropped_private_transaction_is_not_resent_publicly(
    chain: Chain, tmp_path: Path
) -> None:
    from bot.errors import PrivateNotResent
    from bot.execution.pending import Pending
    from tests.anvil.test_sender import settings_for, transfer_call

    settings = settings_for(chain, confirmations=1)
    signer = Signer(Account.from_key(chain.manifest["keeper"]["private_key"]))
    journal = Journal(tmp_path / "j.sqlite")
    async with RpcProxy(chain.url) as public, RpcClient([public.url], chain_id=31337) as rpc:
        sender = Sender(rpc, signer, journal, settings.execution, 31337)
        fees = await suggest_fees(rpc, settings.execution)
        (pending,) = await sender.sign_bundle(
            [(transfer_call(chain, "USDC", chain.manifest["deployer"], 1), 80_000)], fees
        )
        journal.set_status(pending.tx_hash, "sent", sent_block=0)  # a bundle that never landed
        restored = Pending(
            pending.nonce,
            pending.what,
            pending.tx,
            fees,
            versions=list(pending.versions),
            private=True,
        )
        with pytest.raises(PrivateNotResent, match="not re-sent through the public endpoint"):
            await sender.wait(restored)
    raw_sends = [
        r for batch in public.requests for r in batch if r["method"] == "eth_sendRawTransaction"
    ]
    assert raw_sends == []
