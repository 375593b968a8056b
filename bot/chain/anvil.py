"""Start and stop anvil processes: the fixture chain, forks of it, and dry-run forks.

The binary is run directly, never through `npx anvil`: the npm wrapper does not forward signals,
so anvil would outlive its parent and keep holding the port.

A fork never sees the URL it forks: anvil gets `--fork-url http://127.0.0.1:PORT`, a forwarder
in this process (`bot/chain/fork_proxy.py`) that holds the real URL, because a command line is
world-readable and RPC URLs carry API keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bot.chain.fork_proxy import ForkProxy, scrub
from bot.chain.rpc import redact
from bot.errors import RebalancerError, SetupError
from bot.paths import NODE_MODULES

_PLATFORM_PACKAGE = {
    ("Linux", "x86_64"): "anvil-linux-amd64",
    ("Linux", "aarch64"): "anvil-linux-arm64",
    ("Darwin", "x86_64"): "anvil-darwin-amd64",
    ("Darwin", "arm64"): "anvil-darwin-arm64",
}


def find_anvil() -> Path:
    """The anvil binary: $ANVIL_BIN, else the npm package in node_modules, else `anvil` on PATH."""
    override = os.environ.get("ANVIL_BIN")
    if override:
        path = Path(override)
        if not path.is_file():
            raise SetupError(f"ANVIL_BIN={override} does not exist: unset it or point it at anvil")
        return path
    package = _PLATFORM_PACKAGE.get((platform.system(), platform.machine()))
    if package:
        candidate = NODE_MODULES / "@foundry-rs" / package / "bin" / "anvil"
        if candidate.is_file():
            return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise SetupError(
        "anvil not found: run `make setup` (npm install puts @foundry-rs/anvil 1.7.1 into "
        "node_modules), or set ANVIL_BIN to an anvil binary"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port whose last connections sit in TIME_WAIT is free for anvil too;
        # Linux still refuses the bind while anything listens on it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise SetupError(
                f"port {port} is already in use: pass another with --port, or stop the process "
                f"holding it (`lsof -i :{port}` shows it)"
            ) from None


def _die_with_parent() -> None:
    # Linux: the kernel kills anvil if the Python process dies, even by SIGKILL, so an
    # interrupted test run never leaves a chain holding a port.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def rpc_call(url: str, method: str, params: Sequence[Any] = (), timeout: float = 10.0) -> Any:
    """One blocking JSON-RPC request; for process management and fixtures, not the keeper."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    request = urllib.request.Request(  # noqa: S310 (callers pass http URLs)
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http only)
        answer = json.loads(response.read())
    if "error" in answer:
        raise RuntimeError(f"{method} failed: {answer['error'].get('message', answer['error'])}")
    return answer["result"]


class AnvilProcess:
    """A running anvil, stopped by its own pid. Use as a context manager (`with`, or `async with`
    when the caller's event loop must keep running while anvil starts).

    With `fork_url`, anvil forks through a `ForkProxy` started and stopped with it: always, not
    only when the URL looks like it holds a secret. Whether it does cannot be told from its
    shape (a key may sit in the host name, a private host may be the secret), loopback URLs
    carry keys too when they front a provider, and one path, taken by every fork test, is the
    one that stays correct. The cost is a loopback hop per upstream request.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int | None = None,
        load_state: Path | None = None,
        dump_state: Path | None = None,
        fork_url: str | None = None,
        fork_block: int | None = None,
        timestamp: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(find_anvil()), "--port", str(self.port), "--host", "127.0.0.1"]
        if chain_id is not None:
            args += ["--chain-id", str(chain_id)]
        if load_state is not None:
            args += ["--load-state", str(load_state)]
        if dump_state is not None:
            args += ["--dump-state", str(dump_state)]
        if fork_block is not None:
            args += ["--fork-block-number", str(fork_block)]
        if timestamp is not None:
            args += ["--timestamp", str(timestamp)]
        self._args = [*args, *extra_args]
        self._fork_upstream = fork_url  # never on the command line: see ForkProxy
        self._proxy: ForkProxy | None = None
        self._upstream_failure: str | None = None  # the stopped proxy's last failure
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        # stderr goes to a file, not a pipe: a pipe nobody drains would block a chatty anvil.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)

    def start(self) -> Self:
        self._spawn()
        try:
            deadline = time.monotonic() + self._startup_timeout
            while time.monotonic() < deadline:
                if self._answers():
                    return self
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        raise self._not_answering()

    async def start_async(self) -> Self:
        """`start` without blocking the event loop while anvil comes up (a fork fetches its
        first block from the upstream meanwhile)."""
        self._spawn()
        try:
            deadline = time.monotonic() + self._startup_timeout
            while time.monotonic() < deadline:
                if await asyncio.to_thread(self._answers):
                    return self
                await asyncio.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        raise self._not_answering()

    @property
    def upstream_failure(self) -> str | None:
        """A fork's last failure to reach its upstream (redacted), or None."""
        return self._proxy.failure if self._proxy else self._upstream_failure

    def _spawn(self) -> None:
        # Popen runs on the caller's thread: PR_SET_PDEATHSIG fires when that thread ends.
        ensure_port_free(self.port)
        args = self._args
        if self._fork_upstream is not None:
            self._proxy = ForkProxy(self._fork_upstream).start()
            args = [*args, "--fork-url", self._proxy.url]
        try:
            self._process = subprocess.Popen(
                args,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        process = self._process
        if process is None:
            raise SetupError("anvil was stopped while it started")
        if process.poll() is not None:
            self._stderr.seek(0)
            err = " ".join(self._stderr.read().decode(errors="replace").split())
            raise SetupError(
                f"anvil exited at start (code {process.returncode}): {self._clean(err)}"
                + self._upstream_note()
            )
        try:
            rpc_call(self.url, "eth_chainId", timeout=1.0)
        except OSError:
            return False
        return True

    def _not_answering(self) -> SetupError:
        note = self._upstream_note()
        self.stop()
        return SetupError(
            f"anvil did not answer on {self.url} within {self._startup_timeout:.0f}s{note}"
        )

    def _upstream_note(self) -> str:
        failure = self.upstream_failure
        return f"; the fork's upstream RPC {failure}" if failure else ""

    def _clean(self, text: str) -> str:
        # anvil never sees the upstream URL, but its text is scrubbed all the same
        return scrub(text, self._fork_upstream) if self._fork_upstream else text

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (anvil writes --dump-state on it), then SIGKILL if it lingers; then the
        fork's forwarder, if any."""
        process, self._process = self._process, None
        proxy, self._proxy = self._proxy, None
        try:
            if process is None or process.poll() is not None:
                return
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            if proxy is not None:
                proxy.stop()
                self._upstream_failure = proxy.failure

    def rpc(self, method: str, *params: Any) -> Any:
        return rpc_call(self.url, method, params)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[AnvilProcess]:
    with AnvilProcess(**kwargs) as anvil:
        yield anvil


# How a fork fails, seen from the code driving it: anvil does not start (SetupError); the fork
# answers a JSON-RPC error, as when its upstream stopped answering (RuntimeError from rpc_call);
# the fork is gone or too slow (OSError, TimeoutError, http.client's errors); or an answer is
# garbled (ValueError); RebalancerError also covers the RPC client's errors on the fork.
FORK_FAILURES = (RebalancerError, RuntimeError, OSError, ValueError, http.client.HTTPException)


def fork_failure(fork: AnvilProcess, upstream: str, err: BaseException) -> str:
    """One line saying why a fork of `upstream` failed, naming it only as scheme://host:port."""
    detail = str(err) if isinstance(err, RebalancerError) else f"{type(err).__name__}: {err}"
    detail = " ".join(scrub(detail, upstream).split())
    failure = fork.upstream_failure
    # when the upstream failed, anvil's own words mostly repeat it
    limit = 100 if failure else 300
    if len(detail) > limit:
        detail = detail[: limit - 3] + "..."
    cause = f"its upstream RPC {failure}" if failure else "the fork failed"
    return f"plan not simulated on a fork of {redact(upstream)}: {cause} ({detail})"


def fork_of(url: str, block: int | None, chain_id: int) -> AnvilProcess:
    """An anvil forking `url` at `block` that mirrors the parent's state exactly.

    By default anvil credits its ten dev accounts with 10,000 ETH on a fork, which would change
    any of those wallets' balances; `--accounts 0` keeps every balance as the parent has it, and
    `--auto-impersonate` lets callers send from any address without its key.
    """
    return AnvilProcess(
        fork_url=url,
        fork_block=block,
        chain_id=chain_id,
        extra_args=["--accounts", "0", "--auto-impersonate"],
    )
