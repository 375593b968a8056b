"""Dry-run forks never learn the RPC URL's secrets, and a fork that fails is a skipped cycle.

The fixture chain stands in for a provider whose URL carries credentials and an API key:
anvil's HTTP server ignores userinfo and the query (not the path: it answers 404 off "/"), so
http://rpcuser:hunter2@127.0.0.1:PORT/?key=SECRET reaches it as is; a key in the path goes
through tests/proxy.py, which serves any path.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import socket
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from anvil_fixtures.builder import Fixture
from bot.chain import anvil as anvil_module
from bot.chain.anvil import AnvilProcess, fork_of
from bot.chain.fork_proxy import scrub
from bot.execution import fork as fork_module
from bot.journal import Journal
from bot.metrics import Metrics
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.keeper_helpers import keeper_settings, make_keeper
from tests.proxy import RpcProxy

SECRETS = ("rpcuser", "hunter2", "SECRET")  # none of them occurs anywhere else in a log


def secret_url(port: int, path: str = "/") -> str:
    return f"http://rpcuser:hunter2@127.0.0.1:{port}{path}?key=SECRET"


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


def command_line(pid: int | None) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def post(url: str, payload: Any) -> Any:
    request = urllib.request.Request(  # noqa: S310 (a loopback http URL)
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (same)
        return json.loads(response.read())


def forwarders() -> set[str]:
    """The forwarder threads alive (the session's fork fixture keeps one of its own)."""
    return {t.name for t in threading.enumerate() if t.name.startswith("fork-proxy-")}


@adversarial
def test_the_fork_command_line_never_holds_the_url(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)  # a fork only reads its upstream: nothing may move on it
    before = forwarders()
    keeper = chain.manifest["keeper"]["address"]
    block = int(chain.rpc("eth_blockNumber"), 16)
    with (
        faults.escaped(),
        fork_of(secret_url(chain.anvil.port), block, chain.fixture.chain_id) as fork,
    ):
        args = command_line(fork.pid)
        assert_no_secret(" ".join(args))
        assert_no_secret(Path(f"/proc/{fork.pid}/environ").read_bytes().decode(errors="replace"))
        forwarder = args[args.index("--fork-url") + 1]
        assert forwarder.startswith("http://127.0.0.1:")
        assert urlsplit(forwarder).path in ("", "/")
        assert not urlsplit(forwarder).query

        # the fork reads the parent's state through the forwarder
        balance = chain.rpc("eth_getBalance", keeper, hex(block))
        assert fork.rpc("eth_getBalance", keeper, hex(block)) == balance

        # a batch is forwarded whole, in one request
        answer = post(
            forwarder,
            [
                {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []},
                {
                    "jsonrpc": "2.0",
                    "id": 8,
                    "method": "eth_getBalance",
                    "params": [keeper, "latest"],
                },
            ],
        )
        assert {item["id"]: item["result"] for item in answer} == {
            7: hex(chain.fixture.chain_id),
            8: chain.rpc("eth_getBalance", keeper, "latest"),
        }
        # nothing is ever sent upstream from a fork
        refused = post(
            forwarder,
            {"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction", "params": ["0x00"]},
        )
        assert "does not forward eth_sendRawTransaction" in refused["error"]["message"]

    # the forwarder went with the fork: its port is closed, its thread gone
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(urlsplit(forwarder).port or 0)), timeout=2)
    assert forwarders() == before
    # the raw transaction the forwarder refused never reached the parent
    watch.finish(executions=0)


def _watch_fork(
    monkeypatch: pytest.MonkeyPatch,
    once_up: Callable[[AnvilProcess], None] | None = None,
    before_fork: Callable[[], None] | None = None,
) -> list[AnvilProcess]:
    """Every dry-run fork the keeper creates; `before_fork()` runs as the keeper asks for a fork,
    `once_up(fork)` as soon as a fork answers, before the plan's first transaction reaches it."""
    forks: list[AnvilProcess] = []

    def recording(*args: Any, **kwargs: Any) -> AnvilProcess:
        if before_fork is not None:
            before_fork()
        fork = fork_of(*args, **kwargs)
        start = fork.start_async

        async def start_then_act() -> AnvilProcess:
            await start()
            if once_up is not None:
                once_up(fork)
            return fork

        monkeypatch.setattr(fork, "start_async", start_then_act)
        forks.append(fork)
        return fork

    monkeypatch.setattr(fork_module, "fork_of", recording)
    return forks


@adversarial
@pytest.mark.parametrize("key_in", ["query", "path"])
async def test_dry_run_through_a_url_with_secrets(
    key_in: str,
    chain: Chain,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    faults: Faults,
) -> None:
    caplog.set_level(logging.DEBUG)
    watch = faults.watch(chain)  # dry-run: the plan runs on a fork, nothing moves on this chain
    before = forwarders()
    async with RpcProxy(chain.url) as proxy:
        if key_in == "query":
            url = secret_url(chain.anvil.port)
        else:
            url = secret_url(proxy.port, "/v2/SECRET")
        await _dry_run_cycle(url, chain, tmp_path, monkeypatch, faults)
    assert_no_secret(caplog.text)
    assert forwarders() == before
    watch.finish(executions=0)


async def _dry_run_cycle(
    url: str, chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: Faults
) -> None:
    settings = keeper_settings(url, tmp_path)
    seen: list[str] = []
    _watch_fork(monkeypatch, lambda fork: seen.append(" ".join(command_line(fork.pid))))
    journal = Journal(tmp_path / "j.sqlite")
    async with (
        faults.escaped(),
        make_keeper(settings, "dry-run", journal, Metrics(), chain.manifest) as keeper,
    ):
        result = await keeper.cycle()
    assert result.status == "rebalanced", result.reason
    assert journal.rebalances()[0].status == "simulated"
    assert len(seen) == 1
    assert "--fork-url http://127.0.0.1:" in seen[0]
    assert_no_secret(seen[0])


@pytest.fixture
def parent(default_fixture: Fixture) -> Iterator[AnvilProcess]:
    """A fixture chain of the test's own, to kill or freeze."""
    with default_fixture.start() as anvil:
        try:
            yield anvil
        finally:
            if anvil.pid is not None:
                os.kill(anvil.pid, signal.SIGCONT)  # a frozen one must run to stop


@adversarial
@pytest.mark.parametrize("fault", ["killed_mid_simulation", "killed_before_the_fork", "frozen"])
async def test_a_failing_fork_is_a_skipped_cycle(
    fault: str,
    parent: AnvilProcess,
    default_fixture: Fixture,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    faults: Faults,
) -> None:
    caplog.set_level(logging.DEBUG)
    # dry-run: nothing may move on the parent. A killed parent cannot be read afterwards, so its
    # watch ends just before the kill (nothing can land on it after); a frozen one is read once
    # it runs again, after the cycle.
    watch = faults.watch(Chain(parent, default_fixture))
    before = forwarders()
    settings = keeper_settings(secret_url(parent.port), tmp_path)

    def kill_parent() -> None:
        watch.finish(executions=0)
        parent.stop()

    if fault == "killed_mid_simulation":
        forks = _watch_fork(monkeypatch, lambda _: kill_parent())
    elif fault == "killed_before_the_fork":
        forks = _watch_fork(monkeypatch, before_fork=kill_parent)
    else:
        # the upstream accepts connections and never answers: the fork's own timeout decides
        monkeypatch.setattr(
            anvil_module, "rpc_call", functools.partial(anvil_module.rpc_call, timeout=2.0)
        )
        forks = _watch_fork(monkeypatch, lambda _: os.kill(parent.pid or 0, signal.SIGSTOP))

    journal = Journal(tmp_path / "j.sqlite")
    keeper = make_keeper(settings, "dry-run", journal, Metrics(), default_fixture.manifest)
    async with faults.escaped(), keeper:
        result = await keeper.cycle()
    if fault == "frozen":
        assert parent.pid is not None
        os.kill(parent.pid, signal.SIGCONT)
        watch.finish(executions=0)

    assert result.status == "skipped", result.reason
    assert result.reason is not None
    assert result.reason.startswith(
        f"dry-run: plan not simulated on a fork of http://127.0.0.1:{parent.port}"
    )
    if fault != "frozen":
        assert "upstream RPC" in result.reason, result.reason
    assert keeper.breaker.halted_reason() is None
    assert journal.get_state("consecutive_failures") == "0"
    (row,) = journal.rebalances()
    assert row.status == "not_sent"
    assert_no_secret(result.reason)
    assert_no_secret(caplog.text)
    assert "Traceback" not in caplog.text
    assert result.reason in caplog.text  # said once, in the log, as in the journal
    if forks:
        assert forks[-1].pid is None  # stopped, its forwarder with it
    assert forwarders() == before


def test_scrub_hides_every_secret_part_of_a_url() -> None:
    url = "https://rpcuser:hunter2@rpc.example.org/v2/SECRET-PATH?key=SECRET"
    text = f"error sending request for url ({url}); auth rpcuser:hunter2; key=SECRET; SECRET-PATH"
    scrubbed = scrub(text, url)
    assert_no_secret(scrubbed)
    assert scrubbed.startswith("error sending request for url (***)")
