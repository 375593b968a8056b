"""`execution.private_rpc_url` end to end: a live keeper cycle, and `deploy-executor`, with two
recording proxies in front of the same fixture chain, one standing for the public endpoint
(`chain.rpc_urls`) and one for the private one. Whatever signs a transaction must hand it to the
private proxy only, unless `execution.private_fallback_to_public` allows otherwise."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from bot.cli import main
from bot.journal import Journal
from bot.metrics import Metrics
from bot.paths import ROOT
from bot.settings import Settings, load_settings
from tests.conftest import Chain
from tests.helpers import contract
from tests.keeper_helpers import keeper_settings, make_keeper
from tests.proxy import RpcProxy

# Every method by which a transaction can leave for a mempool or a builder.
SENDS = frozenset(
    {
        "eth_sendRawTransaction",
        "eth_sendTransaction",
        "eth_sendBundle",
        "eth_sendPrivateTransaction",
        "eth_sendPrivateRawTransaction",
        "mev_sendBundle",
    }
)


@pytest.fixture(autouse=True)
def _empty_pool(chain: Chain) -> Iterator[None]:
    """evm_revert leaves anvil's transaction pool as it is: a transaction left waiting behind a
    nonce gap must not mine in a later test."""
    yield
    chain.rpc("anvil_dropAllTransactions")


def sends(proxy: RpcProxy) -> list[str]:
    return [method for method in proxy.methods if method in SENDS]


def raw_sent(proxy: RpcProxy) -> list[str]:
    return [
        str(request["params"][0])
        for batch in proxy.requests
        for request in batch
        if request["method"] == "eth_sendRawTransaction"
    ]


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def private_settings(public: str, private: str, tmp_path: Path, **execution: Any) -> Settings:
    base = keeper_settings(public, tmp_path)
    return base.model_copy(
        update={
            "execution": base.execution.model_copy(
                update={"private_rpc_url": private, "poll_seconds": 0.05, **execution}
            )
        }
    )


def mined_from_keeper(chain: Chain, raws: list[str]) -> None:
    """Each raw transaction is on chain, succeeded, and was the keeper's."""
    for raw in raws:
        receipt = chain.w3.eth.get_transaction_receipt(Web3.keccak(hexstr=raw))
        assert receipt["status"] == 1
        assert receipt["from"] == chain.manifest["keeper"]["address"]


async def test_a_live_rebalance_goes_to_the_private_endpoint_only(
    chain: Chain, tmp_path: Path
) -> None:
    keeper = chain.manifest["keeper"]["address"]
    link = contract(chain.w3, chain.token("LINK"), "IERC20")
    nonce, link_before = (
        chain.w3.eth.get_transaction_count(keeper),
        link.functions.balanceOf(keeper).call(),
    )
    journal = Journal(tmp_path / "j.sqlite")
    async with RpcProxy(chain.url) as public, RpcProxy(chain.url) as private:
        settings = private_settings(public.url, private.url, tmp_path)
        async with make_keeper(settings, "live", journal, Metrics(), chain.manifest) as live:
            result = await live.cycle()
        assert result.status == "rebalanced", result.reason
        assert sends(public) == []  # the public endpoint only ever served reads
        raws = raw_sent(private)
        assert sends(private) == ["eth_sendRawTransaction"] * len(raws)
    assert raws  # approvals and swaps, each one to the private endpoint
    mined_from_keeper(chain, raws)
    assert chain.w3.eth.get_transaction_count(keeper) == nonce + len(raws)
    assert link.functions.balanceOf(keeper).call() > link_before  # the trades executed
    (row,) = journal.rebalances()
    assert row.status == "executed"
    hashes = {Web3.keccak(hexstr=raw).to_0x_hex() for raw in raws}
    assert row.tx_hashes is not None
    assert set(row.tx_hashes) <= hashes


@pytest.mark.parametrize("outage", ["refused_from_the_start", "down_when_sending"])
async def test_a_private_endpoint_that_is_down_sends_nothing_publicly(
    chain: Chain, tmp_path: Path, outage: str
) -> None:
    """Down at startup (a closed port: the keeper starts, since nothing connects to it before the
    first send) or only at send time (it answers eth_chainId, then 502 to the transaction):
    either way the cycle fails, names the endpoint, and no transaction reaches the chain."""
    keeper = chain.manifest["keeper"]["address"]
    nonce, block = chain.w3.eth.get_transaction_count(keeper), chain.w3.eth.block_number
    journal = Journal(tmp_path / "j.sqlite")
    async with RpcProxy(chain.url) as public, RpcProxy(chain.url) as private:
        if outage == "refused_from_the_start":
            url = closed_port_url()
        else:
            url = private.url
            private.down_for = frozenset({"eth_sendRawTransaction"})
        settings = private_settings(public.url, url, tmp_path)
        async with make_keeper(settings, "live", journal, Metrics(), chain.manifest) as live:
            results = [await live.cycle(), await live.cycle()]  # and again: still nothing public
        assert sends(public) == []
        if outage == "down_when_sending":
            assert "eth_chainId" in private.methods  # it was reachable...
            assert set(sends(private)) == {"eth_sendRawTransaction"}  # ...and refused each one
    label = url.removeprefix("http://")
    for result in results:
        assert result.status == "failed"
        assert label in (result.reason or ""), result.reason
    assert chain.w3.eth.get_transaction_count(keeper) == nonce
    assert chain.w3.eth.block_number == block  # nothing at all was mined
    assert journal.get_state("halted") is None  # two failures are under the breaker's limit


async def test_after_a_private_outage_the_next_cycle_trades(chain: Chain, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    async with RpcProxy(chain.url) as public, RpcProxy(chain.url) as private:
        private.down_for = frozenset({"eth_sendRawTransaction"})
        settings = private_settings(public.url, private.url, tmp_path, receipt_timeout_seconds=5)
        async with make_keeper(settings, "live", journal, Metrics(), chain.manifest) as live:
            assert (await live.cycle()).status == "failed"
            private.down_for = frozenset()  # the endpoint is back
            result = await live.cycle()
        assert sends(public) == []
    assert result.status == "rebalanced", result.reason


async def test_with_fallback_allowed_a_dead_private_endpoint_sends_publicly(
    chain: Chain, tmp_path: Path
) -> None:
    keeper = chain.manifest["keeper"]["address"]
    nonce = chain.w3.eth.get_transaction_count(keeper)
    journal = Journal(tmp_path / "j.sqlite")
    async with RpcProxy(chain.url) as public:
        settings = private_settings(
            public.url, closed_port_url(), tmp_path, private_fallback_to_public=True
        )
        # one refused connection per send is enough to fall back (the default retries thrice)
        settings = settings.model_copy(
            update={
                "chain": settings.chain.model_copy(
                    update={"retry": settings.chain.retry.model_copy(update={"attempts": 1})}
                )
            }
        )
        async with make_keeper(settings, "live", journal, Metrics(), chain.manifest) as live:
            result = await live.cycle()
        raws = raw_sent(public)
    assert result.status == "rebalanced", result.reason
    assert raws
    mined_from_keeper(chain, raws)
    assert chain.w3.eth.get_transaction_count(keeper) == nonce + len(raws)
    assert journal.rebalances()[0].status == "executed"


async def test_deploy_executor_sends_its_deployment_privately(
    chain: Chain,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = chain.manifest["keeper"]["private_key"]
    async with RpcProxy(chain.url) as public, RpcProxy(chain.url) as private:
        text = (ROOT / "config" / "local.toml").read_text()
        config = tmp_path / "private.toml"
        config.write_text(
            text.replace(
                'rpc_urls = ["http://127.0.0.1:8545"]', f'rpc_urls = ["{public.url}"]'
            ).replace("[execution]\n", f'[execution]\nprivate_rpc_url = "{private.url}"\n')
        )
        settings = load_settings(config)
        assert settings.chain.rpc_urls == [public.url]
        assert settings.execution.private_rpc_url == private.url
        monkeypatch.delenv("REBALANCER_RPC_URL", raising=False)
        monkeypatch.setenv(settings.signer.key_env, key)
        argv = ["deploy-executor", "--config", str(config), "--journal", str(tmp_path / "j.sqlite")]
        code = await asyncio.to_thread(main, argv)  # main runs its own event loop
        assert sends(public) == []
        (raw,) = raw_sent(private)
        assert sends(private) == ["eth_sendRawTransaction"]
    out = capsys.readouterr()
    assert code == 0, out.err
    address = out.out.split(" deployed at ")[1].split(",")[0]
    receipt = chain.w3.eth.get_transaction_receipt(Web3.keccak(hexstr=raw))
    assert receipt["status"] == 1
    assert receipt["contractAddress"] == address
    assert chain.w3.eth.get_code(Web3.to_checksum_address(address))
    assert key.removeprefix("0x") not in out.out + out.err
