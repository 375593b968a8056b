"""The metrics server cannot starve the keeper of file descriptors (issue 12, item 5).

Idle, trickling and oversized clients of the metrics port get closed or a 4xx, without a
traceback in the log; running out of descriptors is this host's fault, never an RPC endpoint's
nor a reason to halt.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from bot.chain.rpc import RpcClient
from bot.errors import LocalResourceError
from bot.journal import Journal
from bot.metrics import Metrics, MetricsServer
from tests.conftest import Chain
from tests.faults import Faults, adversarial
from tests.keeper_helpers import keeper_settings, make_keeper

NO_CHAIN = "no chain and no keeper: the metrics server alone"
IDLE_CONNECTIONS = 2_000
FD_LIMIT = 1024  # the usual default soft limit, which 1,100 idle connections used to exhaust
CAP = 64

# A separate process holds the idle connections, so that they count against its limit, not
# the keeper's. It prints how many connected, waits for a line on stdin, then prints how many
# the server closed.
HOLDER = """
import resource, selectors, socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks, selector = [], selectors.DefaultSelector()
for _ in range(count):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    socks.append(s)
    selector.register(s, selectors.EVENT_WRITE)
pending, deadline = count, time.monotonic() + 10
while pending and time.monotonic() < deadline:
    for key, _ in selector.select(0.1):
        selector.unregister(key.fileobj)
        pending -= 1
print(count - pending, flush=True)
sys.stdin.readline()
closed = 0
for s in socks:
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(closed, flush=True)
"""


@contextmanager
def open_files_limit(soft: int) -> Iterator[None]:
    """This process's soft RLIMIT_NOFILE lowered to `soft` (if it is higher), then restored."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = soft if before[0] == resource.RLIM_INFINITY else min(soft, before[0])
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


@contextmanager
def descriptors_exhausted() -> Iterator[None]:
    """No descriptor left: every new socket, pipe or file fails with EMFILE until the end."""
    probe = os.open(os.devnull, os.O_RDONLY)
    os.close(probe)
    held: list[int] = []
    with open_files_limit(probe + 16):
        try:
            try:
                while True:
                    held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as err:
                if err.errno != errno.EMFILE:
                    raise
            yield
        finally:
            for fd in held:
                os.close(fd)


async def get(port: int, path: str = "/healthz") -> tuple[int, float]:
    """(status, seconds) of a GET on a new connection, which must answer within 2 s."""
    started = time.monotonic()
    async with asyncio.timeout(2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            status_line = await reader.readline()
        finally:
            writer.close()
    return int(status_line.split()[1]), time.monotonic() - started


async def send_and_read_status(port: int, request: bytes) -> int | None:
    """The status the server answers `request` with; None when it closed without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            with suppress(ConnectionError):
                writer.write(request)
                await writer.drain()
            try:
                status_line = await reader.readline()
            except ConnectionError:
                return None
        return int(status_line.split()[1]) if status_line else None
    finally:
        writer.close()


def open_descriptors() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


@adversarial
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
async def test_idle_connections_cannot_starve_the_keeper(
    chain: Chain, tmp_path: Path, caplog: pytest.LogCaptureFixture, faults: Faults
) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < IDLE_CONNECTIONS + 100:
        pytest.skip(f"the hard open-files limit ({hard}) is too low to hold the connections")
    caplog.set_level(logging.INFO)
    watch = faults.watch(chain)  # dry-run: the plans run on forks, nothing moves on this chain
    settings = keeper_settings(chain.url, tmp_path)
    metrics = Metrics()
    journal = Journal(tmp_path / "j.sqlite")
    probes: list[tuple[int, float]] = []
    fds: list[int] = []

    async def probe_healthz(stop: asyncio.Event) -> None:
        while not stop.is_set():
            probes.append(await get(server.port))
            fds.append(open_descriptors())
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)

    # the read timeout is longer than the test: only the cap closes the idle connections here
    server = MetricsServer(metrics, "127.0.0.1", 0, 900, max_connections=CAP, read_timeout=60)
    with open_files_limit(FD_LIMIT):
        async with faults.escaped():
            await server.start()
        async with (
            faults.escaped(),
            make_keeper(settings, "dry-run", journal, metrics, chain.manifest) as keeper,
        ):
            before = open_descriptors()
            holder = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                HOLDER,
                str(server.port),
                str(IDLE_CONNECTIONS),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            try:
                assert holder.stdin is not None
                assert holder.stdout is not None
                connected = int(await holder.stdout.readline())
                stop = asyncio.Event()
                prober = asyncio.create_task(probe_healthz(stop))
                results = [await keeper.cycle() for _ in range(4)]
                stop.set()
                await prober
                assert server.server is not None
                held = server.server.open_connections
                holder.stdin.write(b"\n")
                closed = int(await holder.stdout.readline())
            finally:
                if holder.returncode is None:
                    holder.kill()
                await holder.wait()
                await server.stop()
    assert server.server is not None
    peak = server.server.peak_connections
    print(
        f"\n{connected} idle connections opened; the server held {held} (peak {peak}) and closed "
        f"{closed} of them; descriptors {before} before, at most {max(fds)} during; cycles "
        f"{[r.status for r in results]}; /healthz {len(probes)} probes, slowest "
        f"{max(s for _, s in probes):.3f}s"
    )
    assert connected == IDLE_CONNECTIONS
    assert closed > 0
    assert held <= CAP
    assert peak <= CAP + MetricsServer.BACKLOG
    assert max(fds) - before <= CAP + MetricsServer.BACKLOG + 16  # the probe and a fork's pipes
    assert [r.status for r in results] == ["rebalanced"] * 4, [r.reason for r in results]
    assert journal.get_state("halted") is None
    assert len(probes) >= 3
    assert all(status == 200 for status, _ in probes), probes
    assert max(seconds for _, seconds in probes) < 1.0
    assert "Too many open files" not in caplog.text
    no_tracebacks(caplog)
    watch.finish(executions=0)


@adversarial
async def test_oversized_requests_get_a_4xx_and_no_traceback(
    caplog: pytest.LogCaptureFixture, faults: Faults
) -> None:
    faults.not_applicable("loss", "duplicates", why=NO_CHAIN)
    caplog.set_level(logging.DEBUG)
    server = MetricsServer(Metrics(), "127.0.0.1", 0, 900)
    async with faults.escaped():
        await server.start()
        try:
            huge = b"a" * 1_000_000
            header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + huge + b"\r\n\r\n"
            line = b"GET /" + huge + b" HTTP/1.1\r\nHost: x\r\n\r\n"
            body = (
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n"
                + b"b" * 65_536
            )
            statuses = [await send_and_read_status(server.port, r) for r in (header, line, body)]
            after, _ = await get(server.port)
        finally:
            await server.stop()
    assert after == 200  # and the server still answers
    print(
        f"1 MB header: {statuses[0]}, 1 MB request line: {statuses[1]}, 100 MB body: {statuses[2]}"
    )
    assert statuses[0] in {400, 431, None}
    assert statuses[1] in {400, 414, None}
    assert statuses[2] == 413
    no_tracebacks(caplog)


@adversarial
async def test_slow_and_idle_clients_are_closed_after_the_read_timeout(faults: Faults) -> None:
    faults.not_applicable("loss", "duplicates", why=NO_CHAIN)
    timeout = 1.5
    server = MetricsServer(Metrics(), "127.0.0.1", 0, 900, read_timeout=timeout)
    async with faults.escaped():
        await server.start()

    async def seconds_until_closed(reader: asyncio.StreamReader, trickle: bool) -> float:
        started = time.monotonic()
        while time.monotonic() - started < 10:
            try:
                data = await asyncio.wait_for(reader.read(4096), 1.0)
            except TimeoutError:
                if trickle:
                    writer.write(b"a")  # one header byte a second
                continue
            except ConnectionError:
                data = b""
            if not data:
                return time.monotonic() - started
        raise AssertionError("still open after 10 s")

    async with faults.escaped():
        try:
            # slowloris: a header that never ends
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            slow = await seconds_until_closed(reader, trickle=True)
            writer.close()
            # a kept-alive connection after its answer
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await reader.readline()
            idle = await seconds_until_closed(reader, trickle=False)  # reads the rest first
            writer.close()
        finally:
            await server.stop()
    assert answer.startswith(b"HTTP/1.1 200")
    print(f"read timeout {timeout}s: slowloris closed after {slow:.2f}s, idle after {idle:.2f}s")
    assert timeout - 0.1 <= slow <= timeout + 1.0
    assert idle <= timeout + 1.0


@adversarial
async def test_accepts_failing_for_want_of_descriptors_do_not_flood_the_log(
    caplog: pytest.LogCaptureFixture, faults: Faults
) -> None:
    faults.not_applicable("loss", "duplicates", why=NO_CHAIN)
    caplog.set_level(logging.DEBUG)
    server = MetricsServer(Metrics(), "127.0.0.1", 0, 900)
    async with faults.escaped():
        await server.start()
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        str(server.port),
        "200",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    async with faults.escaped():
        try:
            with descriptors_exhausted():
                # asyncio retries a failed accept after 1 s: this covers several rounds
                await asyncio.sleep(2.5)
                assert server.server is not None
                accepted = server.server.open_connections
        finally:
            holder.kill()
            await holder.wait()
            await server.stop()
    assert accepted == 0  # every accept failed
    floods = [r for r in caplog.records if "out of system resource" in r.getMessage()]
    print(f"\naccepts failing for 2.5 s: {len(floods)} record, {len(caplog.text)} bytes of log")
    assert len(floods) <= 1  # one a minute; asyncio alone logs one per failed accept
    assert len(caplog.text) < 4_000


@adversarial
async def test_out_of_descriptors_is_not_an_rpc_failure(chain: Chain, faults: Faults) -> None:
    watch = faults.watch(chain)  # the client only reads: nothing may move
    async with (
        faults.escaped(),  # a LocalResourceError is caught by pytest.raises; anything else counts
        RpcClient([chain.url], chain_id=chain.fixture.chain_id) as rpc,
    ):
        with descriptors_exhausted(), pytest.raises(LocalResourceError):
            await rpc.call("eth_blockNumber")
        failures = rpc.endpoints[0].failures
        not_ok = [key for key in rpc.stats.requests if key[1] != "ok"]
        block = int(await rpc.call("eth_blockNumber"), 16)  # back once descriptors are
    assert failures == 0
    assert not not_ok
    assert block > 0
    watch.finish(executions=0)


@adversarial
async def test_a_cycle_out_of_descriptors_is_skipped_not_counted_as_failed(
    chain: Chain, tmp_path: Path, faults: Faults
) -> None:
    watch = faults.watch(chain)  # dry-run: the plans run on forks, nothing moves on this chain
    settings = keeper_settings(chain.url, tmp_path)
    settings = settings.model_copy(
        update={"keeper": settings.keeper.model_copy(update={"max_consecutive_failures": 2})}
    )
    journal = Journal(tmp_path / "j.sqlite")
    metrics = Metrics()
    async with (
        faults.escaped(),
        make_keeper(settings, "dry-run", journal, metrics, chain.manifest) as keeper,
    ):
        assert (await keeper.cycle()).status == "rebalanced"
        last_success = metrics.last_success._value.get()
        with descriptors_exhausted():
            starved = [await keeper.cycle() for _ in range(3)]  # more than the breaker allows
        # neither a failure nor a success
        assert journal.get_state("consecutive_failures") == "0"
        assert metrics.last_success._value.get() == last_success
        after = await keeper.cycle()
    assert [r.status for r in starved] == ["skipped"] * 3, [r.reason for r in starved]
    assert all("open files" in (r.reason or "") for r in starved), [r.reason for r in starved]
    assert journal.get_state("halted") is None
    assert after.status == "rebalanced"
    assert metrics.skipped.labels("out_of_descriptors")._value.get() == 3
    watch.finish(executions=0)
