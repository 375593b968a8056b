"""Chain fixtures for every test tier.

The fixture chain is built once (cached by input hash) and each anvil is started from its dumped
state on a free port. Function-scoped fixtures wrap each test in evm_snapshot / evm_revert, so
tests never see each other's writes. Every anvil dies with the test process (PR_SET_PDEATHSIG), so
an interrupted run leaves no chain behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3 import Web3

from anvil_fixtures.builder import KEEPER_INDEX, Fixture, build, dev_account
from bot.chain.anvil import AnvilProcess, fork_of
from tests.faults import (
    faults,  # noqa: F401 (the fixture adversarial tests report through)
    summarize,
)

TESTS = Path(__file__).parent
TIER_BY_DIRECTORY = {"unit": "unit", "anvil": "anvil", "fork": "fork"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The directory is the tier: tests/unit/* are `unit`, tests/anvil/* `anvil`, and so on.
    # `adversarial` is never inferred: each fault test carries the marker (tests/faults.py).
    for item in items:
        relative = Path(item.fspath).relative_to(TESTS)
        tier = TIER_BY_DIRECTORY.get(relative.parts[0])
        if tier:
            item.add_marker(tier)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The fault figures, as the adversarial tests measured and reported them (tests/faults.py):
    a test that failed, or passed without reporting a figure, is listed as unmeasured."""
    reports = [
        report
        for kind in terminalreporter.stats.values()
        for report in kind
        if isinstance(report, pytest.TestReport)
    ]
    summary = summarize(reports)
    if summary is None:
        return
    terminalreporter.write_sep("-", "faults")
    for line in summary.lines():
        terminalreporter.write_line(line)


@dataclass
class Chain:
    """A running chain and what is deployed on it."""

    anvil: AnvilProcess
    fixture: Fixture

    @property
    def url(self) -> str:
        return self.anvil.url

    @property
    def manifest(self) -> dict[str, Any]:
        return self.fixture.manifest

    @property
    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 60}))

    def rpc(self, method: str, *params: Any) -> Any:
        return self.anvil.rpc(method, *params)

    def token(self, symbol: str) -> str:
        address: str = self.manifest["tokens"][symbol]["address"]
        return address

    def pool(self, key: str) -> dict[str, Any]:
        return next(p for p in self.manifest["pools"] if p["key"] == key)


@pytest.fixture(autouse=True)
def _no_key_in_fault_logs(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Through every fault test, the logs at DEBUG never show the keeper's private key."""
    if request.node.get_closest_marker("adversarial") is None:
        yield
        return
    caplog.set_level(logging.DEBUG)
    yield
    key = dev_account(KEEPER_INDEX).key.hex().removeprefix("0x")
    assert key not in caplog.text, "the private key reached the logs"


@pytest.fixture(scope="session")
def default_fixture() -> Fixture:
    return build("default")


@pytest.fixture(scope="session")
def mirror_fixture() -> Fixture:
    return build("default", mirror=True)


@pytest.fixture(scope="session")
def anvil_chain(default_fixture: Fixture) -> Iterator[Chain]:
    with default_fixture.start() as anvil:
        yield Chain(anvil, default_fixture)


@pytest.fixture
def chain(anvil_chain: Chain) -> Iterator[Chain]:
    """The default fixture chain, reverted to its built state after the test."""
    snapshot = anvil_chain.rpc("evm_snapshot")
    try:
        yield anvil_chain
    finally:
        anvil_chain.rpc("evm_revert", snapshot)


@pytest.fixture(scope="session")
def fork_pair(default_fixture: Fixture) -> Iterator[tuple[Chain, Chain]]:
    """(parent, fork): a fixture chain and a second anvil forking it at the built block.

    This is how users test against a mainnet fork, with the fixture chain standing in for mainnet.
    The parent is private to the fork tests so its head stays at the pinned block.
    """
    with default_fixture.start() as parent:
        block = default_fixture.manifest["block_number"]
        with fork_of(parent.url, block, default_fixture.chain_id) as fork:
            yield Chain(parent, default_fixture), Chain(fork, default_fixture)


@pytest.fixture
def forked(fork_pair: tuple[Chain, Chain]) -> Iterator[tuple[Chain, Chain]]:
    parent, fork = fork_pair
    snapshots = parent.rpc("evm_snapshot"), fork.rpc("evm_snapshot")
    try:
        yield parent, fork
    finally:
        parent.rpc("evm_revert", snapshots[0])
        fork.rpc("evm_revert", snapshots[1])


@pytest.fixture(scope="session")
def mainnet_fork_url() -> str:
    url = os.environ.get("FORK_RPC_URL")
    if not url:
        pytest.skip("FORK_RPC_URL is not set: a real mainnet fork needs an Ethereum RPC URL")
    return url
