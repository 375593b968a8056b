"""Start and stop anvil processes: the fixture chain, forks of it, and dry-run forks.

The binary is run directly, never through `npx anvil`: the npm wrapper does not forward signals,
so anvil would outlive its parent and keep holding the port.
"""

from __future__ import annotations

import contextlib
import ctypes
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

from bot.errors import SetupError
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
        "anvil not found: run `make setup` (npm ci installs @foundry-rs/anvil 1.7.1 into "
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
    """A running anvil, stopped by its own pid. Use as a context manager."""

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
        if fork_url is not None:
            args += ["--fork-url", fork_url]
        if fork_block is not None:
            args += ["--fork-block-number", str(fork_block)]
        if timestamp is not None:
            args += ["--timestamp", str(timestamp)]
        self._args = [*args, *extra_args]
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None
        # stderr goes to a file, not a pipe: a pipe nobody drains would block a chatty anvil.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)

    def start(self) -> Self:
        ensure_port_free(self.port)
        self._process = subprocess.Popen(
            self._args,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._stderr.seek(0)
                err = self._stderr.read().decode(errors="replace").strip()
                raise SetupError(f"anvil exited at start (code {self._process.returncode}): {err}")
            try:
                rpc_call(self.url, "eth_chainId", timeout=1.0)
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SetupError(f"anvil did not answer on {self.url} within {self._startup_timeout:.0f}s")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (anvil writes --dump-state on it), then SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

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


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[AnvilProcess]:
    with AnvilProcess(**kwargs) as anvil:
        yield anvil


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
